package local

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"time"
)

// dynamoTurns is a reverse proxy to the AWS stand-in that passes one DynamoDB request at a
// time and every other request as it comes. The stand-in checks a condition and writes
// without a lock (two concurrent conditional UpdateItems on one item both succeeded there),
// where DynamoDB applies them atomically: the dispatch bootstraps, separate processes that the
// in-process turns of governor.DynamoStore and delivery.Ledger do not cover, reach the
// stand-in through it, so that two of them are never given one request slot.
type dynamoTurns struct {
	ln  net.Listener
	srv *http.Server
}

func startDynamoTurns(endpoint string) (*dynamoTurns, error) {
	target, err := url.Parse(endpoint)
	if err != nil || target.Host == "" {
		return nil, fmt.Errorf("DynamoDB turns: stand-in endpoint %q: want http(s)://host:port", endpoint)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("DynamoDB turns: listen: %w", err)
	}
	proxy := httputil.NewSingleHostReverseProxy(target)
	var mu sync.Mutex
	d := &dynamoTurns{ln: ln, srv: &http.Server{ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.Header.Get("X-Amz-Target"), "DynamoDB_") {
				mu.Lock()
				defer mu.Unlock()
			}
			proxy.ServeHTTP(w, r)
		})}}
	go func() { _ = d.srv.Serve(ln) }()
	return d, nil
}

// url is the proxy's endpoint.
func (d *dynamoTurns) url() string { return "http://" + d.ln.Addr().String() }

func (d *dynamoTurns) close() error {
	if err := d.srv.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("DynamoDB turns: %w", err)
	}
	return nil
}
