package beacon

import (
	"bytes"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func samplePacket() *Packet {
	p := &Packet{
		Type:       TypeReply,
		WindowOpen: true,
		Instance:   0x0102030405060708,
		Port:       41234,
		Name:       "kitchen laptop ✓",
		Addrs:      []netip.Addr{netip.MustParseAddr("192.168.1.5"), netip.MustParseAddr("fe80::1")},
		SeenAs:     netip.MustParseAddr("192.168.1.9"),
		Hint:       []byte{1, 2, 3, 4, 5, 6, 7, 8},
	}
	for i := range p.Fingerprint {
		p.Fingerprint[i] = byte(i)
	}
	return p
}

func TestRoundTrip(t *testing.T) {
	for _, p := range []*Packet{samplePacket(), {Type: TypeQuery, Instance: 7}} {
		b, err := p.Append(nil)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Decode(b)
		if err != nil {
			t.Fatalf("decode: %v", err)
		}
		if !reflect.DeepEqual(got, p) {
			t.Fatalf("round trip:\n got %+v\nwant %+v", got, p)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := samplePacket().Append(nil)
	if err != nil {
		t.Fatal(err)
	}
	mutate := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	cases := []struct {
		name string
		in   []byte
		want error
	}{
		{"empty", nil, ErrShort},
		{"truncated header", good[:20], ErrShort},
		{"wrong magic", mutate(func(b []byte) []byte { b[0] = 'X'; return b }), ErrMagic},
		{"wrong version", mutate(func(b []byte) []byte { b[4] = 9; return b }), ErrVersion},
		{"type zero", mutate(func(b []byte) []byte { b[5] = 0; return b }), ErrType},
		{"type five", mutate(func(b []byte) []byte { b[5] = 5; return b }), ErrType},
		{"truncated field", good[:len(good)-3], ErrField},
		{"oversized", append(bytes.Clone(good), make([]byte, MaxPacketSize)...), ErrTooLarge},
		{"bad address length", append(good[:headerLen:headerLen], fieldAddress, 5, 1, 2, 3, 4, 5), ErrField},
		{"multicast address", append(good[:headerLen:headerLen], fieldAddress, 4, 239, 1, 1, 1), ErrField},
		{"empty name", append(good[:headerLen:headerLen], fieldName, 0), ErrField},
		{"long name", append(good[:headerLen:headerLen], append([]byte{fieldName, MaxNameLen + 1}, bytes.Repeat([]byte{'a'}, MaxNameLen+1)...)...), ErrField},
		{"repeated name", append(good[:headerLen:headerLen], fieldName, 1, 'a', fieldName, 1, 'b'), ErrField},
		{"short hint", append(good[:headerLen:headerLen], fieldHint, 2, 1, 2), ErrField},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Decode(c.in); !errors.Is(err, c.want) {
				t.Fatalf("Decode = %v, want %v", err, c.want)
			}
		})
	}
}

// TestDecodeNeutralisesNames: a stranger's name with control or format
// characters keeps its packet (the device stays findable) and arrives
// escaped, short enough to be a name.
func TestDecodeNeutralisesNames(t *testing.T) {
	good, _ := samplePacket().Append(nil)
	for raw, want := range map[string]string{
		"a\x00":                    `a\x00`,
		"\x1b]0;title\x07":         `\x1b]0;title\x07`,
		"invoice\u202efdp.exe":     `invoice\u202efdp.exe`,
		"bad\xff":                  `bad\xff`,
		strings.Repeat("\x1b", 40): strings.Repeat(`\x1b`, 15),
	} {
		b := append(good[:headerLen:headerLen], fieldName, byte(len(raw)))
		p, err := Decode(append(b, raw...))
		if err != nil || p.Name != want || ValidName(p.Name) != nil {
			t.Errorf("name %q: %v, %+v", raw, err, p)
		}
	}
	for _, bad := range []string{"invoice\u202efdp.exe", "a\u2066b", "zero\u200bwidth", "\ufeffx", "a\x1b"} {
		if err := ValidName(bad); err == nil || !strings.Contains(err.Error(), "U+") {
			t.Errorf("ValidName(%q) = %v", bad, err)
		}
		if _, err := (&Packet{Type: TypeAnnounce, Name: bad}).Append(nil); err == nil {
			t.Errorf("Append with name %q succeeded", bad)
		}
	}
}

func TestDecodeSkipsUnknownFields(t *testing.T) {
	b, _ := (&Packet{Type: TypeAnnounce, Name: "x"}).Append(nil)
	b = append(b, 200, 3, 'a', 'b', 'c')
	p, err := Decode(b)
	if err != nil || p.Name != "x" {
		t.Fatalf("Decode = %+v, %v", p, err)
	}
}

func TestAppendRejects(t *testing.T) {
	for _, p := range []*Packet{
		{Type: 0},
		{Type: TypeAnnounce, Name: strings.Repeat("a", MaxNameLen+1)},
		{Type: TypeAnnounce, Hint: []byte{1}},
		{Type: TypeAnnounce, Addrs: make([]netip.Addr, MaxAddrs+1)},
	} {
		if _, err := p.Append(nil); err == nil {
			t.Errorf("Append(%+v) succeeded", p)
		}
	}
}

func FuzzDecode(f *testing.F) {
	good, _ := samplePacket().Append(nil)
	f.Add(good)
	q, _ := (&Packet{Type: TypeQuery}).Append(nil)
	f.Add(q)
	f.Add([]byte("PAIR"))
	f.Add(append(good[:headerLen:headerLen], fieldAddress, 16))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			if p != nil {
				t.Fatal("packet returned with error")
			}
			return
		}
		// Whatever decodes must encode again and decode to the same packet.
		b2, err := p.Append(nil)
		if err != nil {
			t.Fatalf("re-encode of decoded packet: %v", err)
		}
		p2, err := Decode(b2)
		if err != nil || !reflect.DeepEqual(p, p2) {
			t.Fatalf("re-decode: %v\n%+v\n%+v", err, p, p2)
		}
	})
}
