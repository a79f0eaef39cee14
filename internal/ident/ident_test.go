package ident

import "testing"

func TestFingerprintForms(t *testing.T) {
	f := Of([]byte("certificate"))
	g, err := Parse(f.String())
	if err != nil || g != f {
		t.Fatalf("Parse(String()) = %v, %v", g, err)
	}
	if id := f.ID(); len(id) != 19 || id[4] != '-' {
		t.Fatalf("ID() = %q", id)
	}
	for _, bad := range []string{"", "zz", f.String()[:10], f.String() + ":00"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) succeeded", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(Of(nil).String())
	f.Add("AB:CD")
	f.Fuzz(func(t *testing.T, s string) {
		fp, err := Parse(s)
		if err == nil {
			if g, err := Parse(fp.String()); err != nil || g != fp {
				t.Fatalf("round trip of %q", s)
			}
		}
	})
}
