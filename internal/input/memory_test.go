package input

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// gen generates a batch on the fly, never holding more than one line: a
// mix of good rows, bad ids, over-long confs, conf with a quoted line break
// and, now and then, a line far over MaxLineBytes. It counts what it wrote,
// and the line numbers, for the test to compare with what the Reader saw.
type gen struct {
	jsonl   bool
	limit   int64 // stop once this many bytes are written
	written int64
	buf     []byte
	i       int // records written
	line    int // lines written

	rows, errs         int
	rowLines, errLines int // sums of the line numbers, as a checksum
}

func (g *gen) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		if g.written >= g.limit {
			return 0, io.EOF
		}
		g.next()
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	g.written += int64(n)
	return n, nil
}

var (
	genLong = "s3://mybucket/" + strings.Repeat("l", 5000) + "?region=us-east-1"
	genHuge = strings.Repeat("h", 200<<10)
)

// next appends the next record to g.buf (which is empty).
func (g *gen) next() {
	b := g.buf[:0]
	if g.i == 0 && !g.jsonl {
		b = append(b, "\xef\xbb\xbfZone_ID,account_id,destination_conf\r\n"...)
		g.line++
	}
	g.i++
	start := g.line + 1
	id := fmt.Sprintf("%032x", g.i)
	zone, acct, conf := id, "", "s3://bucket-"+id[26:]+"/logs/{DATE}?region=us-east-1"
	ok, lines := true, 1
	switch {
	case g.i%10007 == 0:
		conf, ok = genHuge, false
	case g.i%5003 == 0:
		conf, ok, lines = "s3://b12/x\ny?region=x", false, 2
	case g.i%10 == 7:
		zone, acct, conf = "", id, "gs://bucket-"+id[26:]+"/path"
	case g.i%10 == 8:
		zone, ok = id[1:], false
	case g.i%10 == 9:
		conf, ok = genLong, false
	}
	if g.jsonl {
		lines = 1 // %q writes the line break as \n
		b = fmt.Appendf(b, `{"zone_id":%q,"account_id":%q,"destination_conf":%q}`+"\n", zone, acct, conf)
	} else {
		b = fmt.Appendf(b, "%s,%s,\"%s\"\r\n", zone, acct, conf)
	}
	if g.i%997 == 0 { // blank lines are skipped
		b = append(b, "\r\n\n"...)
		g.line += 2
	}
	g.line += lines
	if ok {
		g.rows++
		g.rowLines += start
	} else {
		g.errs++
		g.errLines += start
	}
	g.buf = b
}

// TestConstantMemory streams about 100 MB (less with -race) of generated
// input through a Reader and checks that the heap stays small and that
// every record is accounted for, at the right line. It is not parallel: it
// measures the heap.
func TestConstantMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("streams 100 MB; skipped with -short")
	}
	size := int64(100 << 20)
	if raceEnabled {
		size = 8 << 20
	}
	// LOGPUSH_STREAM_MB=1024 streams a gigabyte, as the hostile-input
	// check asks; CI keeps the default.
	if mb, err := strconv.Atoi(os.Getenv("LOGPUSH_STREAM_MB")); err == nil && mb > 0 {
		size = int64(mb) << 20
	}
	const maxHeap = 64 << 20
	for _, jsonl := range []bool{false, true} {
		g := &gen{jsonl: jsonl, limit: size}
		if jsonl {
			g.limit = size / 4
		}
		start := time.Now()
		r := NewReader(g, Options{})
		var rows, errs, rowLines, errLines, last int
		var peak uint64
		var ms runtime.MemStats
		for n := 0; ; n++ {
			row, err := r.Next()
			if err == io.EOF {
				break
			}
			var le *LineError
			switch {
			case err == nil:
				rows++
				rowLines += row.Line
				last = row.Line
			case errors.As(err, &le):
				errs++
				errLines += le.Line
				last = le.Line
			default:
				t.Fatalf("fatal error after %d records: %v", n, err)
			}
			if n%20000 == 0 {
				runtime.ReadMemStats(&ms)
				peak = max(peak, ms.HeapInuse)
			}
		}
		runtime.ReadMemStats(&ms)
		peak = max(peak, ms.HeapInuse)
		t.Logf("jsonl=%v: %d MB, %d rows, %d line errors, last line %d, in %v; peak HeapInuse %.1f MB",
			jsonl, g.written>>20, rows, errs, last, time.Since(start).Round(time.Millisecond), float64(peak)/(1<<20))
		if peak > maxHeap {
			t.Errorf("jsonl=%v: HeapInuse reached %d MB, want under %d MB", jsonl, peak>>20, maxHeap>>20)
		}
		if rows != g.rows || errs != g.errs || rowLines != g.rowLines || errLines != g.errLines {
			t.Errorf("jsonl=%v: read %d rows (line sum %d) and %d errors (line sum %d), generated %d (%d) and %d (%d)",
				jsonl, rows, rowLines, errs, errLines, g.rows, g.rowLines, g.errs, g.errLines)
		}
	}
}

// benchInput returns n records of CSV, mostly good.
func benchInput(n int, jsonl bool) []byte {
	g := &gen{jsonl: jsonl, limit: 1 << 62}
	var b bytes.Buffer
	for range n {
		g.next()
		b.Write(g.buf)
		g.buf = g.buf[:0]
	}
	return b.Bytes()
}

// BenchmarkReaderCSV reads a CSV batch of 10,000 records (15% of them bad)
// and reports records per second.
func BenchmarkReaderCSV(b *testing.B) {
	benchmarkReader(b, benchInput(10000, false))
}

// BenchmarkReaderJSONL is BenchmarkReaderCSV for JSONL.
func BenchmarkReaderJSONL(b *testing.B) {
	benchmarkReader(b, benchInput(10000, true))
}

func benchmarkReader(b *testing.B, in []byte) {
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	records := 0
	for b.Loop() {
		r := NewReader(bytes.NewReader(in), Options{})
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			var le *LineError
			if err != nil && !errors.As(err, &le) {
				b.Fatal(err)
			}
			records++
		}
	}
	b.ReportMetric(float64(records)/b.Elapsed().Seconds(), "rows/s")
}
