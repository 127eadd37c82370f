package local

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestDynamoTurnsPassOneDynamoDBRequestAtATime: concurrent DynamoDB requests through the proxy
// reach the stand-in one at a time, each answered; other services' requests pass too.
func TestDynamoTurnsPassOneDynamoDBRequestAtATime(t *testing.T) {
	var inDynamo, most, served atomic.Int64
	standIn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_") {
			n := inDynamo.Add(1)
			for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
			}
			time.Sleep(5 * time.Millisecond) // hold it, so that a second one would overlap
			inDynamo.Add(-1)
		}
		served.Add(1)
		w.Write([]byte("{}"))
	}))
	defer standIn.Close()
	turns, err := startDynamoTurns(standIn.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer turns.close()
	var wg sync.WaitGroup
	for i := range 12 {
		target := "DynamoDB_20120810.UpdateItem"
		if i%4 == 0 {
			target = "AmazonSQS.ReceiveMessage"
		}
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, turns.url(), strings.NewReader("{}"))
			req.Header.Set("X-Amz-Target", target)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status %d through the proxy, want 200", resp.StatusCode)
			}
		})
	}
	wg.Wait()
	if most.Load() != 1 || served.Load() != 12 {
		t.Errorf("%d DynamoDB requests at once at most, %d served; want 1 and 12", most.Load(), served.Load())
	}
}
