package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/pidreuse/pidreuse/internal/crioguest"
)

// Each answer leaves one line the harness can parse; other paths leave none.
func TestHealthzRecordsEachAnswer(t *testing.T) {
	var log bytes.Buffer
	h := healthz(&log)
	before := time.Now().UTC()
	for i := 0; i < 2; i++ {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
		if rec.Code != http.StatusOK || rec.Body.String() != "ok\n" {
			t.Fatalf("GET /healthz: %d %q", rec.Code, rec.Body.String())
		}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/other", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("GET /other: %d", rec.Code)
	}
	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("want a line per answer, got %q", log.String())
	}
	for _, l := range lines {
		rest, ok := strings.CutPrefix(l, crioguest.HealthzAnswered+" ")
		if !ok {
			t.Fatalf("line %q lacks %q", l, crioguest.HealthzAnswered)
		}
		stamp, from, _ := strings.Cut(rest, " for ")
		at, err := time.Parse(time.RFC3339Nano, stamp)
		if err != nil || at.Before(before.Add(-time.Second)) || from == "" {
			t.Fatalf("line %q: time %v (%v), from %q", l, at, err, from)
		}
	}
}
