package beacon

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/lanpairing/pairing/internal/ident"
	"github.com/lanpairing/pairing/internal/termsafe"
)

// Wire constants; see the package documentation for the format.
const (
	Version        = 1
	MaxPacketSize  = 1024
	MaxNameLen     = ident.MaxNameLen
	MaxAddrs       = 16
	HintLen        = 8
	FingerprintLen = 32
	headerLen      = 50
)

var magic = [4]byte{'P', 'A', 'I', 'R'}

// Type is the kind of a beacon packet.
type Type uint8

// Packet types.
const (
	TypeQuery    Type = 1
	TypeAnnounce Type = 2
	TypeReply    Type = 3
	TypeGoodbye  Type = 4
)

func (t Type) String() string {
	switch t {
	case TypeQuery:
		return "query"
	case TypeAnnounce:
		return "announce"
	case TypeReply:
		return "reply"
	case TypeGoodbye:
		return "goodbye"
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

const (
	flagWindowOpen = 1 << 0

	fieldName    = 1
	fieldAddress = 2
	fieldSeenAs  = 3
	fieldHint    = 4
)

// Fingerprint is the SHA-256 of a device's certificate (DER); all zero for
// an anonymous querier.
type Fingerprint = ident.Fingerprint

// Packet is one decoded beacon.
type Packet struct {
	Type        Type
	WindowOpen  bool
	Instance    uint64
	Fingerprint Fingerprint
	Port        uint16
	Name        string
	Addrs       []netip.Addr // addresses the sender believes it has
	SeenAs      netip.Addr   // reply only: where the query came from
	Hint        []byte       // HintLen bytes or nil
}

// ValidName reports whether s can be a device name (ident.ValidName: the
// rule for every device name, beacons' too).
func ValidName(s string) error { return ident.ValidName(s) }

// NeutralName is what a received name that fails ValidName's character
// rule is shown as: its unsafe characters escaped (termsafe.Escape), cut
// to MaxNameLen bytes. A beacon is from anyone and cannot be refused back
// to its sender; dropping it would hide the device from discovery (and
// from a join that finds it by fingerprint), so its name is neutralised.
func NeutralName(s string) string { return termsafe.Cut(s, MaxNameLen) }

// Append encodes p after b. It fails only on values the format cannot carry.
func (p *Packet) Append(b []byte) ([]byte, error) {
	if p.Type < TypeQuery || p.Type > TypeGoodbye {
		return nil, fmt.Errorf("%w: %d", ErrType, p.Type)
	}
	if p.Name != "" {
		if err := ValidName(p.Name); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrField, err)
		}
	}
	if len(p.Addrs) > MaxAddrs {
		return nil, fmt.Errorf("%w: %d addresses, at most %d", ErrField, len(p.Addrs), MaxAddrs)
	}
	if p.Hint != nil && len(p.Hint) != HintLen {
		return nil, fmt.Errorf("%w: hint is %d bytes, want %d", ErrField, len(p.Hint), HintLen)
	}
	start := len(b)
	b = append(b, magic[:]...)
	var flags byte
	if p.WindowOpen {
		flags |= flagWindowOpen
	}
	b = append(b, Version, byte(p.Type), flags, 0)
	b = binary.BigEndian.AppendUint64(b, p.Instance)
	b = append(b, p.Fingerprint[:]...)
	b = binary.BigEndian.AppendUint16(b, p.Port)
	if p.Name != "" {
		b = append(b, fieldName, byte(len(p.Name)))
		b = append(b, p.Name...)
	}
	for _, a := range p.Addrs {
		b = appendAddr(b, fieldAddress, a)
	}
	if p.SeenAs.IsValid() {
		b = appendAddr(b, fieldSeenAs, p.SeenAs)
	}
	if p.Hint != nil {
		b = append(b, fieldHint, HintLen)
		b = append(b, p.Hint...)
	}
	if len(b)-start > MaxPacketSize {
		return nil, ErrTooLarge
	}
	return b, nil
}

func appendAddr(b []byte, field byte, a netip.Addr) []byte {
	a = a.Unmap().WithZone("")
	s := a.AsSlice()
	b = append(b, field, byte(len(s)))
	return append(b, s...)
}

// Decode parses one packet. It never panics; every error wraps one of the
// sentinel errors of this package.
func Decode(b []byte) (*Packet, error) {
	if len(b) > MaxPacketSize {
		return nil, fmt.Errorf("%w: %d bytes", ErrTooLarge, len(b))
	}
	if len(b) >= len(magic) && [4]byte(b[:4]) != magic {
		return nil, ErrMagic
	}
	if len(b) < headerLen {
		return nil, fmt.Errorf("%w: %d bytes", ErrShort, len(b))
	}
	if b[4] != Version {
		return nil, fmt.Errorf("%w: %d", ErrVersion, b[4])
	}
	p := &Packet{
		Type:       Type(b[5]),
		WindowOpen: b[6]&flagWindowOpen != 0,
		Instance:   binary.BigEndian.Uint64(b[8:16]),
		Port:       binary.BigEndian.Uint16(b[48:50]),
	}
	if p.Type < TypeQuery || p.Type > TypeGoodbye {
		return nil, fmt.Errorf("%w: %d", ErrType, b[5])
	}
	copy(p.Fingerprint[:], b[16:48])
	seen := map[byte]bool{}
	for rest := b[headerLen:]; len(rest) > 0; {
		if len(rest) < 2 || len(rest) < 2+int(rest[1]) {
			return nil, fmt.Errorf("%w: truncated field", ErrField)
		}
		typ, val := rest[0], rest[2:2+int(rest[1])]
		rest = rest[2+len(val):]
		if typ != fieldAddress && seen[typ] {
			return nil, fmt.Errorf("%w: field %d repeated", ErrField, typ)
		}
		seen[typ] = true
		switch typ {
		case fieldName:
			name := string(val)
			if termsafe.Check(name) != nil {
				name = NeutralName(name)
			}
			if err := ValidName(name); err != nil {
				return nil, fmt.Errorf("%w: %v", ErrField, err)
			}
			p.Name = name
		case fieldAddress:
			a, err := decodeAddr(val)
			if err != nil {
				return nil, err
			}
			if len(p.Addrs) == MaxAddrs {
				return nil, fmt.Errorf("%w: more than %d addresses", ErrField, MaxAddrs)
			}
			p.Addrs = append(p.Addrs, a)
		case fieldSeenAs:
			a, err := decodeAddr(val)
			if err != nil {
				return nil, err
			}
			p.SeenAs = a
		case fieldHint:
			if len(val) != HintLen {
				return nil, fmt.Errorf("%w: hint is %d bytes", ErrField, len(val))
			}
			p.Hint = append([]byte(nil), val...)
		}
	}
	return p, nil
}

func decodeAddr(v []byte) (netip.Addr, error) {
	a, ok := netip.AddrFromSlice(v)
	if !ok || (len(v) != 4 && len(v) != 16) {
		return netip.Addr{}, fmt.Errorf("%w: address of %d bytes", ErrField, len(v))
	}
	a = a.Unmap()
	if a.IsUnspecified() || a.IsMulticast() {
		return netip.Addr{}, fmt.Errorf("%w: address %s is not a unicast address", ErrField, a)
	}
	return a, nil
}
