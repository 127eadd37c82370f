package test

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/orderpipe/orderpipe/pkg/order"
)

// gz compresses body at level (gzip.NoCompression stores it as it is).
func gz(t testing.TB, body []byte, level int) []byte {
	t.Helper()
	var b bytes.Buffer
	zw, err := gzip.NewWriterLevel(&b, level)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(body)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// readable is what a gzip reader gives of a damaged stream before its error, up to the last
// complete line: the lines ingest can count, all unread.
func readable(t testing.TB, damaged []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(damaged))
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err == nil {
		t.Fatalf("the damaged stream reads without error")
	}
	return b[:bytes.LastIndexByte(b, '\n')+1]
}

// ordersNumbered returns n orders with ids prefix-1... and amount 1.00, and their ids by line.
func ordersNumbered(prefix string, n int) ([]byte, map[int64]string) {
	var b bytes.Buffer
	ids := map[int64]string{}
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("%s-%03d", prefix, i)
		fmt.Fprintf(&b, `{"id":%q,"amount":"1.00"}`+"\n", id)
		ids[int64(i)] = id
	}
	return b.Bytes(), ids
}

// TestE2EVerifyThenSend runs hostile files through the pipeline beside good ones: a gzip cut
// at 60 %, a gzip whose stored order was altered (its CRC-32 no longer matches), CSV files
// whose id column is not usable, a gzip with 32 MiB of newlines between two orders, and a file
// starting with a byte order mark followed by a line of exactly MAX_LINE_BYTES. Nothing of a
// damaged file reaches the API, each is refused at once with its lines unread, and every
// ledger balances: lines = delivered + rejected + parked + unread.
func TestE2EVerifyThenSend(t *testing.T) {
	t.Parallel()
	p := newE2E(t, e2eOptions{})
	p.start(t)

	cutBody, _ := ordersNumbered("CUT", 300)
	cut := gz(t, cutBody, gzip.DefaultCompression)
	cut = cut[:len(cut)*6/10]
	crcBody, _ := ordersNumbered("CRC", 50)
	crc := gz(t, crcBody, gzip.NoCompression)
	at := bytes.LastIndex(crc, []byte(`"1.00"`))
	crc[at+1] = '9' // "9.00": the member's CRC-32 no longer matches

	prefix := `{"id":"BOM-1","pad":"`
	maxLine := prefix + strings.Repeat("x", order.DefaultMaxLineBytes-len(prefix)-2) + `"}`
	lines := []byte(maxLine + "\n" + `{"id":"BOM-2"}` + "\n")
	bom := append([]byte("\xef\xbb\xbf"), lines...)

	bomb := []byte(`{"id":"NL-1"}` + "\n" + strings.Repeat("\n", 32<<20) + `{"id":"NL-2"}` + "\n")

	files := []*e2eFile{
		{key: "uploads/cut.jsonl.gz", body: cut, refused: "gzip stream truncated", text: readable(t, cut)},
		{key: "uploads/crc.jsonl.gz", body: crc, refused: "gzip: invalid checksum", text: crcBody},
		{key: "uploads/upper.csv", body: []byte("ID,amount\nU-1,1\nU-2,2\n"), refused: `no "id" column`},
		{key: "uploads/space.csv", body: []byte(" id,amount\nS-1,1\n"), refused: `no "id" column`},
		{key: "uploads/twice.csv", body: []byte("id,amount,id\nT-1,1,T-1\n"), refused: `duplicate column "id"`},
		{key: "uploads/bom.jsonl", body: bom, text: lines, ids: map[int64]string{1: "BOM-1", 2: "BOM-2"}}, // the body is the line after the BOM
		{key: "uploads/bomb.jsonl.gz", body: gz(t, bomb, gzip.BestCompression), text: bomb, ids: map[int64]string{1: "NL-1", 32<<20 + 2: "NL-2"}},
	}
	for _, f := range files {
		f.version = p.upload(t, f.key, f.body)
	}
	p.settle(t, 90*time.Second, files)
	p.checkLedger(t, files, nil)
	if st := p.api.Stats(); st.Deliveries != 4 || st.Duplicates != 0 {
		t.Errorf("stand-in: %d deliveries, %d duplicates; want 4 (BOM-1, BOM-2, NL-1, NL-2), 0", st.Deliveries, st.Duplicates)
	}
	if st := p.files.Stats(); st.ItemFailures != 0 {
		t.Errorf("ingest item failures %d, want 0: a damaged file is refused at once, never retried", st.ItemFailures)
	}
}

// TestE2EChangedOrder sends the same order id in three files: the second with a changed body
// is applied (a new content key), the third repeating the second is absorbed.
func TestE2EChangedOrder(t *testing.T) {
	t.Parallel()
	p := newE2E(t, e2eOptions{})
	p.start(t)
	bodies := []string{`{"id":"CH-1","amount":"1.00"}`, `{"id":"CH-1","amount":"2.00"}`, `{"id":"CH-1","amount":"2.00"}`}
	for i, body := range bodies {
		f := &e2eFile{key: fmt.Sprintf("uploads/change-%d.jsonl", i+1), body: []byte(body + "\n"), ids: map[int64]string{1: "CH-1"}}
		f.version = p.upload(t, f.key, f.body)
		p.settle(t, 60*time.Second, []*e2eFile{f})
	}
	// The third copy is absorbed: by dispatch's delivery record (deleted unsent) or, without
	// one, by the API as a replay of its key.
	st := p.api.Stats()
	if st.Accepted != 1 || st.Updates != 1 || st.Deliveries-st.Duplicates != 2 {
		t.Errorf("stand-in %+v: want CH-1 accepted, updated once, nothing else applied", st)
	}
	if got := p.api.Orders()["CH-1"]; string(got.Body) != bodies[1] {
		t.Errorf("the API holds %s, want the changed order %s", got.Body, bodies[1])
	}
}
