package arch

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/lanpairing/pairing"

// Limits of one type (issue 12): past them a type holds more than one
// part's state.
const (
	maxMethods = 15
	maxFields  = 12
)

// maxLines bounds a non-test Go file (STYLE.md: a file past ~500 lines is
// usually two rooms). Test files are not bound: a scenario reads best
// whole.
const maxLines = 500

// wideRecords may have more fields: records whose fields mirror a fixed
// list that is itself the set of parts, with the reason.
var wideRecords = map[string]string{
	"diag.Facts": "one field per diag step: each step is a part and owns its field",
}

// forbidden are the arrows that must not exist: importer prefix → imported
// prefix (both relative to the module; "" is the module root).
var forbidden = []struct{ from, to, why string }{
	{"pairing", "diag", "pairing ↛ diag"},
	{"discovery", "diag", "discovery ↛ diag"},
	{"discovery", "pairing", "discovery is below pairing"},
	{"diag", "cmd", "cmd is the top"},
	{"pairing", "cmd", "cmd is the top"},
	{"internal", "pairing", "internal is below the libraries"},
	{"internal", "discovery", "internal/control describes the API on its own"},
	{"internal", "diag", "internal is below the libraries"},
	// The composition root: only the command imports it.
	{"pairing/session", "pairing/daemon", "no part imports the daemon"},
	{"discovery", "pairing/daemon", "no part imports the daemon"},
	{"diag", "pairing/daemon", "no part imports the daemon"},
	// The test harness (it imports testing): only _test.go files import it.
	{"cmd", "internal/lantest", "lantest is for tests only"},
	{"pairing", "internal/lantest", "lantest is for tests only"},
	{"discovery", "internal/lantest", "lantest is for tests only"},
	{"diag", "internal/lantest", "lantest is for tests only"},
	{"internal", "internal/lantest", "lantest is for tests only"},
}

// importedOnlyBy are packages only the listed importers (prefixes) may
// import, with the reason.
var importedOnlyBy = []struct {
	pkg string
	by  []string
	why string
}{
	{"internal/control", []string{"pairing/daemon", "cmd", "diag"},
		"the control API's types are mirrors: the daemon converts the libraries' types into them (internal/control's doc)"},
}

type pkg struct {
	dir     string // relative to the module root
	imports map[string]bool
	doc     bool
	files   []*ast.File
	lines   map[string]int // file name → lines
}

func load(t *testing.T) map[string]*pkg {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	pkgs := map[string]*pkg{}
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		rel = filepath.ToSlash(rel)
		p := pkgs[rel]
		if p == nil {
			p = &pkg{dir: rel, imports: map[string]bool{}, lines: map[string]int{}}
			pkgs[rel] = p
		}
		p.files = append(p.files, f)
		p.lines[filepath.Base(path)] = fset.File(f.Pos()).LineCount()
		p.doc = p.doc || f.Doc != nil && strings.HasPrefix(f.Doc.Text(), "Package "+f.Name.Name+" ") ||
			f.Doc != nil && f.Name.Name == "main" && strings.HasPrefix(f.Doc.Text(), "Command ")
		for _, im := range f.Imports {
			ip, _ := strconv.Unquote(im.Path.Value)
			if ip == module || strings.HasPrefix(ip, module+"/") {
				p.imports[strings.TrimPrefix(strings.TrimPrefix(ip, module), "/")] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pkgs) < 10 {
		t.Fatalf("found only %d packages under %s", len(pkgs), root)
	}
	return pkgs
}

func under(dir, prefix string) bool { return dir == prefix || strings.HasPrefix(dir, prefix+"/") }

// TestOneWayInATree: within a package's tree the arrows go one way.
// When a child builds on its parent (pairing/session on pairing), the
// parent imports no child (pairing no longer imports pairing/rtc);
// a parent that uses its children (discovery and discovery/beacon) has no
// child importing it.
func TestOneWayInATree(t *testing.T) {
	pkgs := load(t)
	for _, p := range pkgs {
		if p.dir == "" {
			continue
		}
		var up, down []string
		for _, c := range pkgs {
			if c.dir != p.dir && under(c.dir, p.dir) && c.imports[p.dir] {
				up = append(up, c.dir)
			}
		}
		for im := range p.imports {
			if im != p.dir && under(im, p.dir) {
				down = append(down, im)
			}
		}
		if len(up) > 0 && len(down) > 0 {
			t.Errorf("%s imports its children %v while %v import it", p.dir, down, up)
		}
	}
}

func TestImportArrows(t *testing.T) {
	for _, p := range load(t) {
		for im := range p.imports {
			for _, f := range forbidden {
				if under(p.dir, f.from) && under(im, f.to) {
					t.Errorf("%s imports %s (%s)", p.dir, im, f.why)
				}
			}
		}
	}
}

func TestImportedOnlyBy(t *testing.T) {
	for _, p := range load(t) {
		for _, r := range importedOnlyBy {
			if !p.imports[r.pkg] {
				continue
			}
			if !slices.ContainsFunc(r.by, func(prefix string) bool { return under(p.dir, prefix) }) {
				t.Errorf("%s imports %s (only %s may: %s)", p.dir, r.pkg, strings.Join(r.by, ", "), r.why)
			}
		}
	}
}

// TestTypeSizes: no type is big enough to hold several parts.
func TestTypeSizes(t *testing.T) {
	for _, p := range load(t) {
		methods := map[string]int{}
		for _, f := range p.files {
			for _, d := range f.Decls {
				switch d := d.(type) {
				case *ast.FuncDecl:
					if d.Recv != nil {
						methods[recvName(d.Recv.List[0].Type)]++
					}
				case *ast.GenDecl:
					for _, s := range d.Specs {
						ts, ok := s.(*ast.TypeSpec)
						if !ok {
							continue
						}
						if st, ok := ts.Type.(*ast.StructType); ok {
							if n := countFields(st); n > maxFields && wideRecords[path.Base(p.dir)+"."+ts.Name.Name] == "" {
								t.Errorf("%s.%s has %d fields (at most %d)", p.dir, ts.Name.Name, n, maxFields)
							}
						}
					}
				}
			}
		}
		for name, n := range methods {
			if n > maxMethods {
				t.Errorf("%s.%s has %d methods (at most %d)", p.dir, name, n, maxMethods)
			}
		}
	}
}

func recvName(e ast.Expr) string {
	for {
		switch x := e.(type) {
		case *ast.StarExpr:
			e = x.X
		case *ast.IndexExpr:
			e = x.X
		case *ast.Ident:
			return x.Name
		default:
			return "?"
		}
	}
}

func countFields(st *ast.StructType) int {
	n := 0
	for _, f := range st.Fields.List {
		n += max(1, len(f.Names))
	}
	return n
}

func TestPackageDocs(t *testing.T) {
	pkgs := load(t)
	var dirs []string
	for d := range pkgs {
		dirs = append(dirs, d)
	}
	slices.Sort(dirs)
	for _, d := range dirs {
		if !pkgs[d].doc {
			t.Errorf("%s: no package doc saying what it is for", d)
		}
	}
}

// TestFileSizes: no non-test Go file is longer than maxLines; split a
// longer one by subject.
func TestFileSizes(t *testing.T) {
	for _, p := range load(t) {
		for name, n := range p.lines {
			if n > maxLines {
				t.Errorf("%s: %d lines, more than %d: split it by subject", path.Join(p.dir, name), n, maxLines)
			}
		}
	}
}
