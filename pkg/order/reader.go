package order

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"path"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// Format is the format of an orders file.
type Format int

// The file formats an orders file may have.
const (
	JSONLines Format = iota + 1 // one JSON object a line (.jsonl, .ndjson)
	CSV                         // RFC 4180 with a header row (.csv)
)

// String returns the format's usual file extension without the dot.
func (f Format) String() string {
	switch f {
	case JSONLines:
		return "jsonl"
	case CSV:
		return "csv"
	}
	return "Format(" + strconv.Itoa(int(f)) + ")"
}

// DefaultMaxLineBytes is the longest line accepted unless Options.MaxLineBytes says otherwise.
const DefaultMaxLineBytes = 256 << 10

// DefaultIDField is the name of the order id field unless Options.IDField says otherwise.
const DefaultIDField = "id"

// bom is the UTF-8 byte order mark.
const bom = "\xef\xbb\xbf"

// maxRaw is the most bytes of a rejected line kept in LineError.Raw.
const maxRaw = 1 << 10

// ErrUnknownFormat is returned (wrapped) by FormatOf and Open for a key whose extension is not
// one of .jsonl, .ndjson or .csv, optionally followed by .gz.
var ErrUnknownFormat = errors.New("unknown orders file format")

// ErrYield is returned by Next when it consumed Options.YieldBytes without finding a line to
// return: blank lines, blank lines before a CSV header, or the rest of a line too long that it
// is skipping (InLine then reports true). It is not an error of the file: Offset and Line count
// what was consumed, and the next call to Next goes on from there.
var ErrYield = errors.New("no order yet")

// ErrBadHeader is returned (wrapped) by Next when a CSV file's header cannot be used: a
// duplicate column name, no id column, bad quoting, invalid UTF-8 or a header line too long.
// It is fatal for the file.
var ErrBadHeader = errors.New("bad csv header")

// FormatOf returns the format of an orders file from its key: ".jsonl" and ".ndjson" are
// JSONLines, ".csv" is CSV, each optionally followed by ".gz" (gzipped is then true).
// Extensions are matched case-insensitively. Any other key gives an error wrapping
// ErrUnknownFormat.
func FormatOf(key string) (f Format, gzipped bool, err error) {
	ext := strings.ToLower(path.Ext(key))
	base := key[:len(key)-len(ext)]
	if ext == ".gz" {
		gzipped = true
		ext = strings.ToLower(path.Ext(base))
	}
	switch ext {
	case ".jsonl", ".ndjson":
		return JSONLines, gzipped, nil
	case ".csv":
		return CSV, gzipped, nil
	}
	return 0, false, fmt.Errorf("format of %q: %w (want .jsonl, .ndjson or .csv, optionally .gz)", key, ErrUnknownFormat)
}

// Options tune a Reader. The zero value reads a whole file with the defaults.
type Options struct {
	// IDField is the name of the order id field (JSON key or CSV column); "" means
	// DefaultIDField.
	IDField string
	// MaxLineBytes is the longest line accepted, not counting its "\n" or "\r\n"; 0 or less
	// means DefaultMaxLineBytes. A longer line is rejected and skipped without being buffered
	// whole: the Reader's memory stays about MaxLineBytes whatever the input.
	MaxLineBytes int
	// Header is the CSV header when resuming in the middle of a file (from Reader.Header at the
	// checkpoint): the first line read is then data. Ignored for JSON Lines.
	Header []string
	// StartLine is the number of the line before the first one read: 0 at the start of a file,
	// or the Line of the last order or LineError returned before a checkpoint. A UTF-8 byte
	// order mark is accepted only when StartLine is 0.
	StartLine int64
	// YieldBytes bounds the bytes Next consumes without a result: once a call has consumed this
	// many in blank lines (before a CSV header too) or in skipping a line too long, it returns
	// ErrYield so that the caller can look at its clock (and checkpoint at Offset, with InLine)
	// inside a long run of blank lines or a huge line. 0 or less means never.
	YieldBytes int64
	// InLine says the input starts inside a line too long that was already returned (as a
	// LineError, or counted), whose number is StartLine: its rest is skipped first. It resumes a
	// checkpoint taken where InLine reported true.
	InLine bool
}

// Order is one valid order read from a file.
type Order struct {
	// ID is the order id, an ordinary immutable string: it stays valid after the next call to
	// Next and may be kept (as a map key, in a batch, in a message attribute). The Reader cuts
	// ids from blocks of idBlock bytes that it never writes twice, so reading a line does not
	// allocate; a kept ID keeps its block alive (strings.Clone one kept for long among many).
	ID string
	// Body is the order as a JSON object. For JSON Lines it is the line's object exactly as
	// given (surrounding whitespace removed, no re-encoding: numbers keep their text). For CSV
	// it is an object of strings, one per column in header order. Body aliases the Reader's
	// buffer: it is valid only until the next call to Next (bytes.Clone or Order.Clone keeps it).
	Body []byte
	// Line is the 1-based line number of the order in the file.
	Line int64
}

// Clone returns a copy of o that stays valid after the next call to Next: use it to keep an
// order's Body across calls, for example while filling a batch.
func (o Order) Clone() Order {
	return Order{ID: o.ID, Body: bytes.Clone(o.Body), Line: o.Line}
}

// idBlock is the size of the blocks Order.ID strings are cut from: one allocation per idBlock
// bytes of ids (about one per thousands of lines).
const idBlock = 16 << 10

// keepID returns id as a string that stays valid: a copy in the current id block, whose bytes
// are written once (a full block is left to the ids cut from it and a new one started).
func (r *Reader) keepID(id []byte) string {
	if len(r.ids)+len(id) > cap(r.ids) {
		r.ids = make([]byte, 0, max(idBlock, len(id)))
	}
	start := len(r.ids)
	r.ids = append(r.ids, id...)
	return unsafe.String(&r.ids[start], len(id))
}

// LineError is a rejected line. The Reader stays usable after returning one.
type LineError struct {
	Line   int64  // 1-based line number in the file
	Reason string // a short, stable, lower-case phrase, e.g. "invalid json"
	Raw    []byte // at most the first 1 KiB of the line (without its line end), copied
}

// Error returns "line N: reason".
func (e *LineError) Error() string {
	return "line " + strconv.FormatInt(e.Line, 10) + ": " + e.Reason
}

// Reasons of a LineError. Tests and reports compare them: keep them stable.
const (
	ReasonInvalidUTF8     = "invalid utf-8"
	ReasonInvalidJSON     = "invalid json"
	ReasonNotObject       = "not a json object"
	ReasonMissingID       = "missing id"
	ReasonIDNotString     = "id is not a string"
	ReasonInvalidID       = "invalid id"
	ReasonDuplicateID     = "duplicate id field"
	ReasonFieldCount      = "wrong number of fields"
	ReasonBareQuote       = "bare quote in unquoted field"
	ReasonUnterminated    = "unterminated quoted field"
	ReasonAfterQuote      = "text after closing quote"
	reasonLongLinePattern = "line longer than %d bytes"
)

// Reader reads orders from a JSON Lines or CSV stream, one line at a time, in constant memory.
// It does not allocate per valid line once warmed up. A Reader is not safe for concurrent use.
type Reader struct {
	br     *bufio.Reader
	format Format
	id     string
	max    int
	long   string // the reason for a line longer than max
	line   int64
	offset int64
	bom    bool // a byte order mark may still come
	// skipping: the current line is too long, was returned (or counted) already, and its rest
	// is still to be consumed (skipLine)
	skipping bool
	yield    int64 // Options.YieldBytes
	err      error // sticky: io.EOF or a fatal error
	badHdr   error // Count: the unusable CSV header, reported at the end of the count

	header  []string
	keys    [][]byte   // CSV: `"name":` for each column, JSON-escaped
	idCol   int        // CSV: index of the id column
	body    []byte     // CSV: the JSON object being built
	vals    []byte     // CSV: the unquoted values of the header line
	ends    []int      // CSV: start and end of each value, in vals or body
	scratch []byte     // the start of a line too long
	idBuf   []byte     // JSON: the unescaped id
	ids     []byte     // the block Order.IDs are cut from (see keepID)
	keyBuf  []byte     // JSON: an unescaped key
	stack   containers // JSON scanner: open containers
}

// NewReader returns a Reader of orders in format f from r. Errors in opts (a CSV header without
// the id column or with duplicate names) are returned by the first call to Next.
func NewReader(r io.Reader, f Format, opts Options) *Reader {
	rd := &Reader{
		format:   f,
		id:       opts.IDField,
		max:      opts.MaxLineBytes,
		line:     opts.StartLine,
		bom:      opts.StartLine == 0 && !opts.InLine,
		skipping: opts.InLine,
		yield:    opts.YieldBytes,
		idCol:    -1,
	}
	if rd.id == "" {
		rd.id = DefaultIDField
	}
	if rd.max <= 0 {
		rd.max = DefaultMaxLineBytes
	}
	rd.long = fmt.Sprintf(reasonLongLinePattern, rd.max)
	// Room for the longest line plus a byte order mark and "\r\n", so that every acceptable
	// line is one ReadSlice.
	rd.br = bufio.NewReaderSize(r, rd.max+len(bom)+2)
	switch f {
	case JSONLines:
	case CSV:
		if opts.Header != nil {
			rd.err = rd.setHeader(slices.Clone(opts.Header))
			rd.badHdr = rd.err // Count counts the lines all the same
		}
	default:
		rd.err = fmt.Errorf("new order reader: %w: %v", ErrUnknownFormat, f)
	}
	return rd
}

// Open returns a Reader for the orders file named key, read from r: the format comes from the
// key's extension (see FormatOf) and a ".gz" key is decompressed. An empty gzipped stream is an
// empty file. The error wraps ErrUnknownFormat or the gzip header error.
func Open(r io.Reader, key string, opts Options) (*Reader, error) {
	f, gz, err := FormatOf(key)
	if err != nil {
		return nil, fmt.Errorf("open orders file: %w", err)
	}
	if gz {
		zr, err := gzip.NewReader(r)
		switch {
		case errors.Is(err, io.EOF):
			r = bytes.NewReader(nil)
		case err != nil:
			return nil, fmt.Errorf("open orders file %q: gzip: %w", key, err)
		default:
			r = zr
		}
	}
	return NewReader(r, f, opts), nil
}

// Skip discards the next n bytes of the (decompressed) input without reading them as lines:
// the part of a file before a checkpoint, for an input that cannot start there (a gzip stream
// has no byte ranges). Call it before the first Next; Offset does not count the bytes skipped.
// An input shorter than n gives an error, which Next then keeps returning.
func (r *Reader) Skip(n int64) error {
	if r.err != nil && r.err != r.badHdr {
		return r.err
	}
	if n <= 0 {
		return nil
	}
	r.bom = false
	if _, err := io.CopyN(io.Discard, r.br, n); err != nil {
		r.err = fmt.Errorf("skip %d bytes: %w", n, err)
		return r.err
	}
	return nil
}

// Line is the number of the last line consumed: that of the last result of Next, or of the last
// blank line before an ErrYield. Like Options.StartLine it counts from the start of the file.
func (r *Reader) Line() int64 { return r.line }

// Offset is the number of bytes of the (decompressed) input this Reader consumed through the
// end of the last line Next returned, valid or rejected, including its line end (and the blank
// lines before it); after Next returns io.EOF it is the length of the input. A line too long is
// returned (rejected) before its end is read: while InLine reports true, Offset counts the part
// of it consumed so far. A Reader resumed at a checkpoint counts from where it started: add the
// checkpoint's offset.
func (r *Reader) Offset() int64 { return r.offset }

// InLine reports whether the Reader stopped inside a line too long, already returned or counted,
// whose rest it has still to skip: a checkpoint at Offset must be resumed with Options.InLine.
func (r *Reader) InLine() bool { return r.skipping }

// BadHeader returns why Count found the CSV header unusable (it counts on all the same), or nil:
// a count resumed after it takes an empty non-nil Options.Header.
func (r *Reader) BadHeader() error { return r.badHdr }

// Header returns a copy of the CSV header, to store in a checkpoint; nil for JSON Lines or
// before the header is read.
func (r *Reader) Header() []string { return slices.Clone(r.header) }

// Next returns the next valid order. At the end of the input it returns io.EOF. A bad line gives
// a *LineError and the Reader stays usable: call Next again. Any other error is fatal (I/O,
// corrupt gzip, unusable CSV header) and Next keeps returning it.
func (r *Reader) Next() (Order, error) {
	if r.err != nil {
		return Order{}, r.err
	}
	start := r.offset
	if r.skipping {
		if err := r.skipLine(r.yield); err != nil {
			r.err = err
			return Order{}, err
		}
		if r.skipping {
			return Order{}, ErrYield
		}
	}
	if r.format == CSV && r.header == nil {
		if err := r.readHeader(start, r.yield); err == ErrYield {
			return Order{}, err
		} else if err != nil {
			r.err = err
			return Order{}, err
		}
	}
	for {
		line, long, err := r.readLine()
		if err != nil {
			r.err = err
			return Order{}, err
		}
		if long {
			return Order{}, r.reject(line, r.long)
		}
		if blank(line) {
			if r.yield > 0 && r.offset-start >= r.yield {
				return Order{}, ErrYield
			}
			continue
		}
		if !utf8.Valid(line) {
			return Order{}, r.reject(line, ReasonInvalidUTF8)
		}
		var o Order
		var reason string
		if r.format == JSONLines {
			o, reason = r.parseJSON(line)
		} else {
			o, reason = r.parseCSV(line)
		}
		if reason != "" {
			return Order{}, r.reject(line, reason)
		}
		o.Line = r.line
		return o, nil
	}
}

// readLine reads the next line and returns it without its line end, counting it in r.line and
// r.offset. A line longer than r.max is returned with long set as soon as its first maxRaw bytes
// are read (or it ended): only those are returned, and r.skipping says its rest is still to be
// consumed (skipLine). At the end of the input it returns io.EOF; other errors are fatal.
func (r *Reader) readLine() (line []byte, long bool, err error) {
	b, err := r.br.ReadSlice('\n')
	n := int64(len(b))
	if err == bufio.ErrBufferFull {
		long = true
		// Keep the start for Raw: the next ReadSlice overwrites the buffer.
		keep := append(r.scratch[:0], b[:min(len(b), maxRaw)]...)
		for err == bufio.ErrBufferFull && len(keep) < maxRaw {
			b, err = r.br.ReadSlice('\n')
			n += int64(len(b))
			keep = append(keep, bytes.TrimSuffix(b[:min(len(b), maxRaw-len(keep))], []byte{'\n'})...)
		}
		switch {
		case err == bufio.ErrBufferFull:
			r.skipping, err = true, nil
		case len(keep) < maxRaw: // the whole line is kept: drop its "\r"
			keep = bytes.TrimSuffix(keep, []byte{'\r'})
		}
		r.scratch = keep
		b = keep
	}
	switch {
	case err == io.EOF && n == 0:
		return nil, false, io.EOF
	case err != nil && err != io.EOF:
		return nil, false, fmt.Errorf("read orders line %d: %w", r.line+1, err)
	}
	r.line++
	r.offset += n
	if r.bom {
		r.bom = false
		b = bytes.TrimPrefix(b, []byte(bom)) // not part of the line: not counted in its length
	}
	if !long {
		if len(b) > 0 && b[len(b)-1] == '\n' {
			b = b[:len(b)-1]
		}
		if len(b) > 0 && b[len(b)-1] == '\r' {
			b = b[:len(b)-1]
		}
		long = len(b) > r.max
	}
	return b, long, nil
}

// skipLine consumes the rest of a line too long that readLine returned in part (r.skipping),
// counting it in r.offset: to the end of the line, or until budget bytes are consumed (0 or less:
// no bound) with r.skipping still set.
func (r *Reader) skipLine(budget int64) error {
	for n := int64(0); r.skipping && (budget <= 0 || n < budget); {
		b, err := r.br.ReadSlice('\n')
		n += int64(len(b))
		r.offset += int64(len(b))
		switch {
		case err == bufio.ErrBufferFull:
		case err == nil || err == io.EOF:
			r.skipping = false
		default:
			return fmt.Errorf("read orders line %d: %w", r.line, err)
		}
	}
	return nil
}

// reject returns the LineError for the current line.
func (r *Reader) reject(line []byte, reason string) *LineError {
	return &LineError{Line: r.line, Reason: reason, Raw: bytes.Clone(line[:min(len(line), maxRaw)])}
}

// blank reports whether line holds only spaces, tabs and carriage returns.
func blank(line []byte) bool {
	for _, c := range line {
		if c != ' ' && c != '\t' && c != '\r' {
			return false
		}
	}
	return true
}

// idChar marks the bytes allowed in an order id after the first.
var idChar = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	t['.'], t['_'], t[':'], t['-'] = true, true, true, true
	return t
}()

// ValidID reports whether id is a valid order id: ^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 128 {
		return false
	}
	if c := id[0]; c == '.' || c == '_' || c == ':' || c == '-' {
		return false
	}
	for i := 0; i < len(id); i++ {
		if !idChar[id[i]] {
			return false
		}
	}
	return true
}

// Count reads on without parsing lines and returns how many lines that are not blank it read
// (a CSV header aside): the verifying pass over a file, which checks that the whole input can be
// read (for gzip: every member decompresses to its end with a matching CRC-32 and length) and
// that a CSV header is usable, and counts the lines Next would return. It stops after consuming
// budget bytes (0 or less: no bound) and returns nil, or at the end of the input with io.EOF.
// A CSV file whose header is unusable is counted to the end all the same (its lines are all
// unread) and the count ends with the ErrBadHeader error instead of io.EOF. Other errors are
// fatal, as for Next. Count and Next are not meant to be mixed on one Reader.
//
// To resume a count, open the input as for Next (Options.Header: the Header read by the count
// so far, or an empty non-nil slice when it was unusable; Options.InLine: InLine) and Skip to
// where the count stopped (Offset). A line too long is counted when it starts; its rest, blank
// lines before a CSV header and the header itself count against budget too.
func (r *Reader) Count(budget int64) (int64, error) {
	if r.err != nil && r.err != r.badHdr {
		return 0, r.err
	}
	r.err = nil
	start := r.offset
	var n int64
	if r.format == CSV && r.header == nil && r.badHdr == nil {
		err := r.skipLine(budget)
		if err == nil && !r.skipping {
			err = r.readHeader(start, budget)
		}
		switch {
		case err == ErrYield || err == nil && r.skipping:
			return 0, nil // no header yet: blank lines, or a line too long being skipped
		case errors.Is(err, ErrBadHeader):
			r.badHdr = err
		case err != nil:
			r.err = err
			return 0, err
		}
	}
	for budget <= 0 || r.offset-start < budget {
		if r.skipping {
			if err := r.skipLine(budget - (r.offset - start)); err != nil {
				r.err = err
				return n, err
			}
			if r.skipping {
				break
			}
		}
		line, long, err := r.readLine()
		if err == io.EOF && r.badHdr != nil {
			err = r.badHdr
		}
		if err != nil {
			r.err = err
			return n, err
		}
		if long || !blank(line) {
			n++
		}
	}
	return n, nil
}
