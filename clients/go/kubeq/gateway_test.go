package kubeq

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A 503 of the gateway comes back as a GatewayError carrying its reason and Retry-After.
func TestGatewayRefusalCarriesRetryAfter(t *testing.T) {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "5")
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"error": "the Kubernetes API server is unavailable"}`))
	}))
	defer server.Close()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t"), 0o600); err != nil {
		t.Fatal(err)
	}
	g := &Gateway{BaseURL: server.URL, Namespace: "ns", TaskQueue: "tq", TokenFile: token}
	_, err := g.Enqueue(Job{Task: "tasks.x"})
	var refusal *GatewayError
	if !errors.As(err, &refusal) {
		t.Fatalf("want a GatewayError, got %v", err)
	}
	if refusal.Status != 503 || refusal.RetryAfter != 5*time.Second || refusal.Reason == "" {
		t.Fatalf("got %+v", refusal)
	}
}
