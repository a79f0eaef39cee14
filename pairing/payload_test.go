package pairing

import (
	"errors"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func samplePayload() *Payload {
	p := &Payload{
		Host: netip.MustParseAddr("192.168.1.5"), Port: 41234,
		Secret: make([]byte, SecretLen), Name: "kitchen laptop",
		Addrs: []netip.Addr{netip.MustParseAddr("192.168.1.5"), netip.MustParseAddr("fd00::5")},
	}
	for i := range p.Fingerprint {
		p.Fingerprint[i] = byte(i)
	}
	p.Secret[0] = 7
	return p
}

func TestPayloadRoundTrip(t *testing.T) {
	p := samplePayload()
	u := p.URL()
	if !strings.HasPrefix(u, "http://192.168.1.5:41234/p#v=1&fp=") {
		t.Fatalf("URL = %s", u)
	}
	got, err := ParsePayload(u)
	if err != nil {
		t.Fatal(err)
	}
	want := *p
	want.Addrs = []netip.Addr{netip.MustParseAddr("fd00::5")} // the host is not repeated
	if !reflect.DeepEqual(*got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	if c := got.Candidates(); len(c) != 2 || c[0] != p.Host {
		t.Fatalf("candidates %v", c)
	}
	// The bare fragment works too, and a link without s= is link mode.
	frag := u[strings.Index(u, "#")+1:]
	if f, err := ParsePayload(frag); err != nil || f.Fingerprint != p.Fingerprint || f.Port != 0 {
		t.Fatalf("fragment: %+v, %v", f, err)
	}
	p.Secret = nil
	if l, err := ParsePayload(p.URL()); err != nil || l.Secret != nil || strings.Contains(p.URL(), "s=") {
		t.Fatalf("link: %+v, %v", l, err)
	}
}

func TestPayloadRejects(t *testing.T) {
	good := samplePayload().URL()
	for _, c := range []struct{ in, want string }{
		{strings.Replace(good, "v=1", "v=2", 1), "version \"2\" is not supported"},
		{strings.Replace(good, "v=1&", "", 1), "no version"},
		{strings.Replace(good, "fp=", "fp=AA", 1), "fingerprint"},
		{strings.Replace(good, "&s=", "&s=AA", 1), "secret"},
		{strings.Replace(good, "a=", "a=nope,", 1), "address \"nope\""},
		{strings.Replace(good, "http://", "https://", 1), "scheme"},
		{strings.Replace(good, ":41234", "", 1), "port"},
		{strings.Replace(good, "192.168.1.5", "example.com", 1), "not an IP"},
		{good + "&v=1", "given twice"},
		{strings.Replace(good, "n=kitchen", "n=%01kitchen", 1), "name"},
		{strings.Repeat("x", 3000), "longer than"},
	} {
		_, err := ParsePayload(c.in)
		if !errors.Is(err, ErrPayload) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParsePayload(%.60q) = %v, want %q", c.in, err, c.want)
		}
	}
}

func FuzzParsePayload(f *testing.F) {
	f.Add(samplePayload().URL())
	f.Add("v=1&fp=AAAA&s=BB")
	f.Add("http://[fe80::1%25eth0]:1/p#v=1")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePayload(s)
		if err != nil {
			return
		}
		if p.Host.IsValid() {
			// A parsed URL renders to a URL that parses to the same payload.
			q, err := ParsePayload(p.URL())
			if err != nil || q.Fingerprint != p.Fingerprint || q.Port != p.Port || string(q.Secret) != string(p.Secret) || q.Name != p.Name {
				t.Fatalf("re-parse of %q: %+v %v", p.URL(), q, err)
			}
		}
	})
}

func portStr(p uint16) string { return strconv.Itoa(int(p)) }
