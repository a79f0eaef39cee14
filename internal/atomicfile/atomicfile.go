// Package atomicfile writes a file whole or not at all, for the state and
// secrets the daemon and the command keep.
package atomicfile

import (
	"os"
	"path/filepath"
)

// Write writes b to path with mode 0600: a new file beside it, fsync,
// rename over path (a symlink there is replaced, never followed), fsync
// of the directory. A crash leaves the old file or the new one whole.
func Write(path string, b []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
