package destination

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fileBundle is a File rooted at "/" and a location maker inside a temp dir.
type fileBundle struct {
	file     *File
	dir      string
	observed *observations
}

func setupFile(t *testing.T) *fileBundle {
	t.Helper()
	b := &fileBundle{dir: t.TempDir(), observed: new(observations)}
	b.file = &File{Observe: b.observed.observe}
	return b
}

// loc returns the file location of name inside the bundle's directory.
func (b *fileBundle) loc(name string) Location {
	return Location{Scheme: "file", Key: strings.TrimPrefix(filepath.ToSlash(filepath.Join(b.dir, name)), "/")}
}

func TestFileWriteThenRead(t *testing.T) {
	t.Parallel()
	b := setupFile(t)
	loc := b.loc("new/dir/challenge.txt")
	before := time.Now()
	if err := b.file.Write(t.Context(), loc, []byte("token")); err != nil {
		t.Fatal(err)
	}
	obj, err := b.file.Read(t.Context(), loc, before.Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if string(obj.Body) != "token" || obj.ModTime.IsZero() {
		t.Errorf("object = %q at %v", obj.Body, obj.ModTime)
	}
	fi, err := os.Stat(filepath.Join(b.dir, "new/dir/challenge.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, want 0644", fi.Mode().Perm())
	}
	di, err := os.Stat(filepath.Join(b.dir, "new/dir"))
	if err != nil {
		t.Fatal(err)
	}
	if !di.IsDir() {
		t.Errorf("%v is not a directory", di.Name())
	}
	if got := b.observed.list(); strings.Join(got, ",") != "write ok,read ok" {
		t.Errorf("observed %q", got)
	}
	// Overwrite.
	if err := b.file.Write(t.Context(), loc, []byte("token-2")); err != nil {
		t.Fatal(err)
	}
	if obj, err := b.file.Read(t.Context(), loc, time.Time{}); err != nil || string(obj.Body) != "token-2" {
		t.Errorf("after overwrite: %q, %v", obj.Body, err)
	}
}

func TestFileReadErrors(t *testing.T) {
	t.Parallel()
	b := setupFile(t)
	if err := os.WriteFile(filepath.Join(b.dir, "plain"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		loc  Location
		want string
	}{
		{"directory", b.loc(""), "not a regular file (d---------)"},
		{"parent is a file", b.loc("plain/child"), "not a directory"},
		{"empty key", Location{Scheme: "file"}, "invalid location: empty path"},
	}
	for _, tt := range tests {
		_, err := b.file.Read(t.Context(), tt.loc, time.Time{})
		requireError(t, err, Permanent)
		if !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %q, want it to contain %q", tt.name, err, tt.want)
		}
	}
	err := b.file.Write(t.Context(), b.loc("plain/child"), []byte("x"))
	requireError(t, err, Permanent)
}

func TestFilePermissionDenied(t *testing.T) {
	t.Parallel()
	if os.Geteuid() == 0 {
		t.Skip("root reads any file")
	}
	b := setupFile(t)
	name := filepath.Join(b.dir, "secret.txt")
	if err := os.WriteFile(name, []byte("x"), 0o000); err != nil {
		t.Fatal(err)
	}
	_, err := b.file.Read(t.Context(), b.loc("secret.txt"), time.Time{})
	e := requireError(t, err, Permanent)
	if e.Permission != "read permission on the file" {
		t.Errorf("permission = %q", e.Permission)
	}
	if want := "read file:///" + b.loc("secret.txt").Key + ": access denied: the reading identity needs read permission on the file: "; !strings.HasPrefix(err.Error(), want) {
		t.Errorf("err = %q, want prefix %q", err, want)
	}

	ro := filepath.Join(b.dir, "ro")
	if err := os.Mkdir(ro, 0o555); err != nil {
		t.Fatal(err)
	}
	err = b.file.Write(t.Context(), b.loc("ro/x"), []byte("x"))
	if e := requireError(t, err, Permanent); e.Permission != "write permission on the directory" {
		t.Errorf("permission = %q", e.Permission)
	}
}

// TestFileRoot checks that keys resolve under Root and cannot leave it.
func TestFileRoot(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	f := &File{Root: root}
	for key, want := range map[string]string{
		"logs/c.txt":           "logs/c.txt",
		"/logs/c.txt":          "logs/c.txt",
		"../../etc/c.txt":      "etc/c.txt",
		"logs/../../../c.txt":  "c.txt",
		"logs/./x/../c.txt":    "logs/c.txt",
		"logs//c.txt":          "logs/c.txt",
		"..":                   "",
		"logs/..%2f..%2fc.txt": "logs/..%2f..%2fc.txt",
	} {
		if got := f.path(Location{Scheme: "file", Key: key}); got != filepath.Join(root, want) {
			t.Errorf("key %q: path %q, want %q", key, got, filepath.Join(root, want))
		}
	}
	if got := (&File{}).path(Location{Key: "tmp/x"}); got != filepath.FromSlash("/tmp/x") {
		t.Errorf("default root: %q", got)
	}
}

// TestFileAtomicWrite reads while another goroutine keeps replacing the file
// with a large body of a different letter: every read must see one whole
// body, never a mix or a prefix, and no temporary file may be left behind.
func TestFileAtomicWrite(t *testing.T) {
	t.Parallel()
	b := setupFile(t)
	b.file.MaxBodyBytes = 1 << 20
	loc := b.loc("challenge.txt")
	const size = 256 << 10
	bodies := [][]byte{bytes.Repeat([]byte("a"), size), bytes.Repeat([]byte("b"), size)}
	if err := b.file.Write(t.Context(), loc, bodies[0]); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	var wg sync.WaitGroup
	wg.Go(func() {
		for i := 0; ctx.Err() == nil; i++ {
			if err := b.file.Write(t.Context(), loc, bodies[i%2]); err != nil {
				t.Error(err)
				return
			}
		}
	})
	reads := 0
	for ctx.Err() == nil {
		obj, err := b.file.Read(t.Context(), loc, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(obj.Body, bodies[0]) && !bytes.Equal(obj.Body, bodies[1]) {
			t.Fatalf("read a partial or mixed body of %d bytes", len(obj.Body))
		}
		reads++
	}
	wg.Wait()
	if reads == 0 {
		t.Fatal("no reads")
	}
	entries, err := os.ReadDir(b.dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("directory holds %q, want only challenge.txt", names)
	}
}

// TestFileMissingTopDirectory: a path whose top-level directory does not
// exist is an error, not "not found yet", and Write does not create it
// (the simulator ran as root created /nonexistent/...); below an existing
// top-level directory Write creates what is missing.
func TestFileMissingTopDirectory(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	f := &File{Root: root}
	loc := Location{Scheme: "file", Key: "definitely/not/here/ownership-challenge.txt"}
	_, err := f.Read(t.Context(), loc, time.Time{})
	var de *Error
	if errors.Is(err, ErrNotFound) || !errors.As(err, &de) || de.Kind != Permanent || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Read under a missing top-level directory = %v, want a permanent error", err)
	}
	if err := f.Write(t.Context(), loc, []byte("token")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Write under a missing top-level directory = %v, want refused", err)
	}
	if _, err := os.Stat(filepath.Join(root, "definitely")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("the directory was created: %v", err)
	}
	if err := os.Mkdir(filepath.Join(root, "definitely"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Read(t.Context(), loc, time.Time{}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Read below an existing top-level directory = %v, want ErrNotFound", err)
	}
	if err := f.Write(t.Context(), loc, []byte("token")); err != nil {
		t.Fatalf("Write below an existing top-level directory = %v", err)
	}
}
