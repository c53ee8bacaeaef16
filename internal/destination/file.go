package destination

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// File reads and writes objects on the local file system: the "file" scheme,
// used by the Cloudflare simulator and demos. A Location's Key is the path
// relative to Root ("/" by default), so file:///tmp/logs/x.txt is Key
// "tmp/logs/x.txt". The zero value is ready to use and safe for concurrent
// use.
type File struct {
	// Root is the directory that keys are relative to; a key cannot reach
	// outside it with "..". Default: "/".
	Root string
	// MaxBodyBytes caps the size of a challenge file. Default:
	// DefaultMaxBodyBytes (64 KiB).
	MaxBodyBytes int64
	// Observe, when set, is called once per Read and once per Write with the
	// operation and its Outcome. Default: nil.
	Observe ObserveFunc
}

var (
	_ Reader = (*File)(nil)
	_ Writer = (*File)(nil)
)

// path returns the file name of loc under Root. path.Clean of a rooted path
// drops leading "..", so the result stays under Root.
func (f *File) path(loc Location) string {
	return filepath.Join(cmp.Or(f.Root, "/"), filepath.FromSlash(path.Clean("/"+loc.Key)))
}

// Read stats the file first and answers ErrStale for an old file without
// opening it; then it reads the file, up to MaxBodyBytes. ModTime comes from
// the open file, so it belongs to the content read even if the file was
// replaced in between.
func (f *File) Read(ctx context.Context, loc Location, notBefore time.Time) (obj Object, err error) {
	defer func() { f.Observe.observe(OpRead, err) }()
	if err := ctx.Err(); err != nil {
		return Object{}, &Error{Kind: Transient, Op: OpRead, Location: loc, Err: err}
	}
	if loc.Key == "" {
		return Object{}, &Error{Kind: Permanent, Op: OpRead, Location: loc, Err: errors.New("invalid location: empty path")}
	}
	name := f.path(loc)
	reportLocalClock(ctx)
	fi, err := os.Stat(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if derr := f.topMissing(OpRead, loc); derr != nil {
				return Object{}, derr
			}
		}
		return Object{}, fileError(OpRead, loc, err)
	}
	if err := f.check(loc, fi, notBefore); err != nil {
		return Object{}, err
	}

	fh, err := os.Open(name)
	if err != nil {
		return Object{}, fileError(OpRead, loc, err)
	}
	defer fh.Close()
	if fi, err = fh.Stat(); err != nil {
		return Object{}, fileError(OpRead, loc, err)
	}
	if err := f.check(loc, fi, notBefore); err != nil {
		return Object{}, err
	}
	limit := cmp.Or(f.MaxBodyBytes, DefaultMaxBodyBytes)
	body, err := io.ReadAll(io.LimitReader(fh, limit+1))
	if err != nil {
		return Object{}, fileError(OpRead, loc, err)
	}
	if int64(len(body)) > limit {
		return Object{}, tooLarge(OpRead, loc, limit)
	}
	return Object{Body: body, ModTime: fi.ModTime()}, nil
}

func (f *File) check(loc Location, fi fs.FileInfo, notBefore time.Time) error {
	if !fi.Mode().IsRegular() {
		return &Error{Kind: Permanent, Op: OpRead, Location: loc, Err: fmt.Errorf("not a regular file (%s)", fi.Mode().Type())}
	}
	if fi.ModTime().Before(notBefore) {
		return stale(OpRead, loc, fi.ModTime(), notBefore)
	}
	if limit := cmp.Or(f.MaxBodyBytes, DefaultMaxBodyBytes); fi.Size() > limit {
		return tooLarge(OpRead, loc, limit)
	}
	return nil
}

// topMissing is a Permanent error when the top-level directory of loc's
// path under Root (/definitely of /definitely/not/here) does not exist: no
// file will ever appear there, since Write does not create it.
func (f *File) topMissing(op string, loc Location) error {
	rel := strings.TrimPrefix(path.Clean("/"+loc.Key), "/")
	top, _, _ := strings.Cut(rel, "/")
	if top == "" {
		return nil
	}
	dir := filepath.Join(cmp.Or(f.Root, "/"), top)
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		return &Error{Kind: Permanent, Op: op, Location: loc, Err: fmt.Errorf("directory %s does not exist", dir)}
	}
	return nil
}

// Write writes body to a temporary file in the target's directory and
// renames it over the target, so that a reader sees either the old file or
// the whole new one, never a partial token. The file gets mode 0644.
// Missing directories are created (mode 0755) below an existing top-level
// one only: /tmp/logs/x gets logs/x, /nonexistent/x is refused, whoever
// runs it.
func (f *File) Write(ctx context.Context, loc Location, body []byte) (err error) {
	defer func() { f.Observe.observe(opWrite, err) }()
	if err := ctx.Err(); err != nil {
		return &Error{Kind: Transient, Op: opWrite, Location: loc, Err: err}
	}
	if loc.Key == "" {
		return &Error{Kind: Permanent, Op: opWrite, Location: loc, Err: errors.New("invalid location: empty path")}
	}
	name := f.path(loc)
	dir := filepath.Dir(name)
	if err := f.topMissing(opWrite, loc); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fileError(opWrite, loc, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(name)+".tmp-*")
	if err != nil {
		return fileError(opWrite, loc, err)
	}
	defer func() {
		if err != nil {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()
	if _, err := tmp.Write(body); err != nil {
		return fileError(opWrite, loc, err)
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fileError(opWrite, loc, err)
	}
	if err := tmp.Sync(); err != nil {
		return fileError(opWrite, loc, err)
	}
	if err := tmp.Close(); err != nil {
		return fileError(opWrite, loc, err)
	}
	if err := os.Rename(tmp.Name(), name); err != nil {
		return fileError(opWrite, loc, err)
	}
	return nil
}

// fileError classifies a file system error.
// Delete removes the file at loc; a file that is not there is deleted
// already.
func (f *File) Delete(ctx context.Context, loc Location) (err error) {
	defer func() { f.Observe.observe(opDelete, err) }()
	if err := ctx.Err(); err != nil {
		return &Error{Kind: Transient, Op: opDelete, Location: loc, Err: err}
	}
	if loc.Key == "" {
		return &Error{Kind: Permanent, Op: opDelete, Location: loc, Err: errors.New("invalid location: empty path")}
	}
	if err := os.Remove(f.path(loc)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fileError(opDelete, loc, err)
	}
	return nil
}

func fileError(op string, loc Location, err error) error {
	e := &Error{Kind: Permanent, Op: op, Location: loc, Err: err}
	switch {
	case op != opWrite && errors.Is(err, fs.ErrNotExist):
		return notFound(op, loc)
	case errors.Is(err, fs.ErrPermission):
		if op == OpRead {
			e.Permission = "read permission on the file"
		} else {
			e.Permission = "write permission on the directory"
		}
	case errors.Is(err, syscall.ENOTDIR), errors.Is(err, syscall.EISDIR),
		errors.Is(err, syscall.ENAMETOOLONG), errors.Is(err, syscall.ELOOP),
		errors.Is(err, syscall.EROFS):
		// Stays so until someone changes the file system.
	default:
		e.Kind = Transient
	}
	return e
}
