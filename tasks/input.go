package tasks

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Format is the format of the input.
type Format int

// Formats.
const (
	// FormatAuto picks JSONL if the first byte that is not white space (after an
	// optional UTF-8 byte order mark) is '{', and CSV otherwise.
	FormatAuto Format = iota
	// FormatCSV has a header line naming the columns.
	FormatCSV
	// FormatJSONL has one JSON object per line.
	FormatJSONL
)

// String returns the name ParseFormat accepts.
func (f Format) String() string {
	switch f {
	case FormatAuto:
		return "auto"
	case FormatCSV:
		return "csv"
	case FormatJSONL:
		return "jsonl"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// ParseFormat parses "auto", "csv" or "jsonl", in any case.
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "auto":
		return FormatAuto, nil
	case "csv":
		return FormatCSV, nil
	case "jsonl":
		return FormatJSONL, nil
	}
	return FormatAuto, fmt.Errorf("unknown input format %q (want auto, csv or jsonl)", s)
}

// LineError is a bad line of an input file: the producer reports it and
// goes on reading, and enqueues nothing while the file has one.
type LineError struct {
	// Line is the line where the record starts, from 1.
	Line int
	// Field names the column or key that is wrong; "" when the line as a
	// whole is (bad CSV or JSON, too long, both ids or none).
	Field string
	// Err says why. It never holds a destination_conf or a secret.
	Err error
}

// Error returns "line 12: zone_id: must be 32 hex characters, got 31", or
// "line 12: <reason>" when Field is empty.
func (e *LineError) Error() string {
	msg := "invalid"
	if e.Err != nil {
		msg = e.Err.Error()
	}
	var fe *FieldError
	if errors.As(e.Err, &fe) && fe.Field == e.Field {
		msg = fe.Msg
	}
	if e.Field == "" {
		return fmt.Sprintf("line %d: %s", e.Line, msg)
	}
	return fmt.Sprintf("line %d: %s: %s", e.Line, e.Field, msg)
}

// Unwrap returns Err.
func (e *LineError) Unwrap() error { return e.Err }
