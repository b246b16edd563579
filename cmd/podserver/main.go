// Command podserver is the one process of the node's container images:
// a healthz HTTP server (the "sdn-like" daemon's liveness endpoint, and the
// regular pod's server) and, installed as /pause, the infra process. Both
// exit on SIGTERM at once: a PID 1 that ignores SIGTERM (as `sleep` does)
// makes StopPodSandbox hang and every guest shutdown wait for the kill
// timeout.
//
//	podserver [--addr :10256]   serve GET /healthz → 200 "ok", a line on stdout per answer
//	pause                        wait for SIGTERM
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/pidreuse/pidreuse/internal/crioguest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if filepath.Base(os.Args[0]) == "pause" {
		<-ctx.Done()
		return
	}
	addr := flag.String("addr", ":10256", "listen address")
	flag.Parse()
	if err := serve(ctx, *addr, os.Stdout); err != nil {
		log.Fatalf("podserver: %v", err)
	}
}

// serve answers /healthz on addr until ctx ends, and writes a line to
// answered for each answer.
func serve(ctx context.Context, addr string, answered io.Writer) error {
	srv := &http.Server{Addr: addr, Handler: healthz(answered), ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Printf("podserver: serving /healthz on %s", addr)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdown); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// healthz answers GET /healthz with "ok", then writes the answer's line to
// answered (the container's log): a probe kubelet sent through the node's
// own address reached the pod, which no absence of a failure line can say.
func healthz(answered io.Writer) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
		fmt.Fprintf(answered, "%s %s for %s\n", crioguest.HealthzAnswered, time.Now().UTC().Format(time.RFC3339Nano), r.RemoteAddr)
	})
	return mux
}
