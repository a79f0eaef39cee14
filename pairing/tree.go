package pairing

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
)

// MaxTreeFiles bounds the files one send carries (all --file paths and
// folders together): a photo library's year, not a whole disk by mistake.
const MaxTreeFiles = 10000

// TreeFile is a local file to send and where it goes in the receiver's
// inbox.
type TreeFile struct {
	Local string // its path here
	Rel   string // its relative path there ('/'-separated)
	Size  int64
}

// Tree lists the files to send for paths: a file as its base name, a
// folder as its own name followed by the relative path of each file in
// it. Every relative path passes CheckPath, so a name the receiver would
// refuse is found before anything is sent. Symbolic links, devices and
// the like are refused rather than followed, as are more than
// MaxTreeFiles files and a folder without a file.
func Tree(paths []string) ([]TreeFile, error) {
	var out []TreeFile
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			return nil, err
		}
		top := filepath.Base(filepath.Clean(p))
		if fi.Mode().IsRegular() {
			if err := CheckPath(top); err != nil {
				return nil, err
			}
			out = append(out, TreeFile{Local: p, Rel: top, Size: fi.Size()})
		} else if !fi.IsDir() {
			return nil, fmt.Errorf("%s is not a regular file or a folder", p)
		} else {
			before := len(out)
			err = filepath.WalkDir(p, func(local string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				rel, err := filepath.Rel(p, local)
				if err != nil {
					return err
				}
				rel = path.Join(top, filepath.ToSlash(rel))
				if err := CheckPath(rel); err != nil {
					return err
				}
				if d.IsDir() {
					return nil
				}
				info, err := d.Info()
				if err != nil {
					return err
				}
				if !info.Mode().IsRegular() {
					return fmt.Errorf("%s is not a regular file (links are not followed)", local)
				}
				if len(out) >= MaxTreeFiles {
					return fmt.Errorf("more than %d files", MaxTreeFiles)
				}
				out = append(out, TreeFile{Local: local, Rel: rel, Size: info.Size()})
				return nil
			})
			if err != nil {
				return nil, err
			}
			if len(out) == before {
				return nil, fmt.Errorf("%s holds no file", p)
			}
		}
		if len(out) > MaxTreeFiles {
			return nil, fmt.Errorf("more than %d files", MaxTreeFiles)
		}
	}
	return out, nil
}
