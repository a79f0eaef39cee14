package discovery

import (
	"net"
	"slices"
	"sync"
)

// Interfaces lists the interfaces the daemon may use: all but the ignored
// ones, which a config reload may change. Safe for concurrent use.
type Interfaces struct {
	mu     sync.Mutex
	ignore []string
}

// Ignore sets the interface names never to use; it reports whether they
// changed.
func (f *Interfaces) Ignore(names []string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	changed := !slices.Equal(f.ignore, names)
	f.ignore = slices.Clone(names)
	return changed
}

// List lists the interfaces but the ignored ones.
func (f *Interfaces) List() ([]net.Interface, error) {
	ifs, err := net.Interfaces()
	f.mu.Lock()
	ignore := f.ignore
	f.mu.Unlock()
	return slices.DeleteFunc(ifs, func(i net.Interface) bool { return slices.Contains(ignore, i.Name) }), err
}
