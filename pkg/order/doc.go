// Package order defines orders and the files that carry them: the streaming reader for
// JSON Lines and CSV (optionally gzip-compressed), validation of each line, and the names of the
// message attributes that carry an order through the queues.
//
// # Reading a file
//
// Open (or NewReader with a Format) returns a Reader; Next returns one valid Order at a time,
// a *LineError for a rejected line (the Reader stays usable), io.EOF at the end, or a fatal
// error (I/O, corrupt gzip, an unusable CSV header: errors.Is(err, ErrBadHeader)) that Next then
// keeps returning. The Reader reads line by line in constant memory (about MaxLineBytes) and
// does not allocate for a valid line: Order.Body aliases its buffers and is valid only until the
// next call to Next (use Order.Clone to keep it); Order.ID is an immutable string, safe to keep
// (the Reader cuts ids from blocks it writes once).
//
// # The rules of a line
//
//   - Input is UTF-8; a line with invalid UTF-8 is rejected ("invalid utf-8").
//   - Lines end with "\n" or "\r\n". Blank lines (spaces, tabs) are skipped but counted, so line
//     numbers are those of the file. A UTF-8 byte order mark is accepted at the start of the
//     file (only when Options.StartLine is 0).
//   - A line longer than MaxLineBytes (not counting its line end) is rejected ("line longer
//     than 262144 bytes") and skipped without being buffered whole.
//   - JSON Lines: a line is exactly one JSON object, as strict as json.Valid (no trailing text,
//     the same nesting limit); otherwise "invalid json", or "not a json object" for a valid
//     array or scalar. The order id is the top-level member whose key, unescaped, equals the id
//     field; members of nested objects never count. It must appear once ("duplicate id field"),
//     be present ("missing id"), be a JSON string ("id is not a string": a number is not
//     accepted, so an id never depends on how a number is written) and, unescaped, match
//     ValidID ("invalid id"). The body is the object exactly as written: numbers such as
//     1234.50 or 1e400 keep their text.
//   - CSV: the first line that is not blank is the header (none: an empty file, no orders). Its
//     names must be distinct and include the id field, or Next fails with ErrBadHeader. Fields
//     follow RFC 4180 quoting (commas and doubled quotes inside quotes); a quoted field cannot
//     span lines, since one order is one line: such a line is rejected ("unterminated quoted
//     field") and so, most likely, is the rest of the record on the next line. Other reasons:
//     "bare quote in unquoted field", "text after closing quote", "wrong number of fields",
//     "missing id" (empty) and "invalid id". The body is a JSON object of strings in header
//     order.
//
// # Resuming
//
// A checkpoint keeps Reader.Offset, the Line of the last result and Reader.Header. To resume,
// read the input from that offset and call NewReader (or Open) with Options{Header: header,
// StartLine: line}; a gzip file has no byte ranges: Open it from the start and call
// Reader.Skip(offset) before the first Next. Offset then counts from the checkpoint.
package order
