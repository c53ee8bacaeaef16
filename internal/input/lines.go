package input

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// errRecordTooLong is what lineReader.Read returns to encoding/csv when the
// record being read goes over MaxLineBytes; Reader turns it into a LineError
// wrapping ErrLineTooLong.
var errRecordTooLong = errors.New("record too long")

// lineReader reads the input by physical lines of at most MaxLineBytes,
// counting them, so that no line, however long, is ever held in memory
// whole.
//
// JSONL reads it line by line with next. CSV reads it through Read, as the
// io.Reader under encoding/csv: Read hands out at most one line per call, so
// the csv.Reader's buffer never reads ahead past the line it needs, and it
// refuses (errRecordTooLong) to hand out more than MaxLineBytes for one
// record, then skips to the end of the offending line.
type lineReader struct {
	br *bufio.Reader
	// lines counts the line ends consumed (handed out or skipped): the
	// current line is lines+1.
	lines int

	// Read's state: the rest of the current chunk, whether the last chunk
	// ended mid-line, the first non-blank line of the current record and
	// the bytes handed out for it, whether it overflowed and whether the
	// rest of the current line must be skipped. err is an I/O error to
	// return once the chunk read with it has been handed out.
	pending  []byte
	midLine  bool
	recLine  int
	recBytes int
	overflow bool
	skip     bool
	err      error
}

func newLineReader(r io.Reader) *lineReader {
	// Room for a line of MaxLineBytes and its "\r\n".
	return &lineReader{br: bufio.NewReaderSize(r, MaxLineBytes+2)}
}

// skipBOM drops a UTF-8 byte order mark at the start of the input.
func (l *lineReader) skipBOM() error {
	b, err := l.br.Peek(3)
	if bytes.Equal(b, []byte("\xef\xbb\xbf")) {
		_, err = l.br.Discard(3)
		return err
	}
	if err == io.EOF {
		return nil
	}
	return err
}

// firstByte returns the first byte that is not ASCII white space, or 0 if
// the input has none. White space that fills the whole buffer is consumed
// (counting its line ends), so that a hostile run of blanks costs no memory.
func (l *lineReader) firstByte() (byte, error) {
	for n := 1; ; {
		b, err := l.br.Peek(n)
		if i := bytes.IndexFunc(b, func(r rune) bool { return !isSpaceByte(r) }); i >= 0 {
			return b[i], nil
		}
		switch {
		case err == io.EOF:
			return 0, nil
		case err == bufio.ErrBufferFull || n == l.br.Size():
			l.lines += bytes.Count(b, []byte{'\n'})
			if _, err := l.br.Discard(len(b)); err != nil {
				return 0, err
			}
			n = 1
		case err != nil:
			return 0, err
		default:
			n = min(2*n, l.br.Size())
		}
	}
}

func isSpaceByte(r rune) bool {
	return r == ' ' || r == '\t' || r == '\r' || r == '\n' || r == '\v' || r == '\f'
}

// next returns the next physical line without its line end, and its number.
// A line longer than MaxLineBytes is skipped without being buffered and
// reported with tooLong. At the end of the input it returns io.EOF; any
// other error is an I/O error. The line is valid until the next call.
func (l *lineReader) next() (line []byte, n int, tooLong bool, err error) {
	n = l.lines + 1
	line, err = l.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull {
		for err == bufio.ErrBufferFull {
			_, err = l.br.ReadSlice('\n')
		}
		if err == nil {
			l.lines++
		}
		if err == io.EOF {
			err = nil
		}
		return nil, n, true, err
	}
	switch {
	case err == io.EOF && len(line) == 0:
		return nil, n, false, io.EOF
	case err != nil && err != io.EOF:
		return nil, n, false, err
	}
	if len(line) > 0 && line[len(line)-1] == '\n' {
		l.lines++
	}
	line = trimEOL(line)
	return line, n, len(line) > MaxLineBytes, nil
}

// trimEOL removes a trailing "\n" or "\r\n".
func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}

// beginRecord starts the accounting of a new CSV record.
func (l *lineReader) beginRecord() {
	l.recLine, l.recBytes, l.overflow = 0, 0, false
}

// recordLine is the line where the current CSV record starts.
func (l *lineReader) recordLine() int {
	if l.recLine > 0 {
		return l.recLine
	}
	return max(l.lines, 1)
}

// Read implements io.Reader for encoding/csv: see lineReader.
func (l *lineReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(l.pending) == 0 {
		if l.err != nil {
			return 0, l.err
		}
		if l.skip {
			if err := l.skipLine(); err != nil {
				return 0, err
			}
		}
		chunk, err := l.br.ReadSlice('\n')
		switch {
		case err == bufio.ErrBufferFull || err == nil:
		case err == io.EOF:
			if len(chunk) == 0 {
				return 0, io.EOF
			}
		default:
			l.err = err
		}
		if len(chunk) == 0 {
			continue
		}
		line := l.lines + 1
		ends := chunk[len(chunk)-1] == '\n'
		if ends {
			l.lines++
		}
		l.midLine = !ends
		if l.recLine == 0 && !blank(chunk) {
			l.recLine = line
		}
		if l.recLine > 0 {
			l.recBytes += len(chunk)
			if l.recBytes-len(chunk)+len(trimEOL(chunk)) > MaxLineBytes {
				l.overflow = true
				l.skip = !ends
				return 0, errRecordTooLong
			}
		}
		l.pending = chunk
	}
	n := copy(p, l.pending)
	l.pending = l.pending[n:]
	return n, nil
}

// skipLine discards the rest of the current line.
func (l *lineReader) skipLine() error {
	l.skip = false
	if !l.midLine {
		return nil
	}
	for {
		_, err := l.br.ReadSlice('\n')
		switch err {
		case bufio.ErrBufferFull:
			continue
		case nil:
			l.lines++
			l.midLine = false
			return nil
		case io.EOF:
			l.midLine = false
			return nil
		default:
			return err
		}
	}
}

// blank reports whether a chunk holds nothing but line ends.
func blank(chunk []byte) bool {
	for _, c := range chunk {
		if c != '\r' && c != '\n' {
			return false
		}
	}
	return true
}
