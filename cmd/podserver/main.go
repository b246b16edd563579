// Command podserver is the one process of the node's container images:
// a healthz HTTP server (the "sdn-like" daemon's liveness endpoint, and the
// regular pod's server) and, installed as /pause, the infra process. Both
// exit on SIGTERM at once: a PID 1 that ignores SIGTERM (as `sleep` does)
// makes StopPodSandbox hang and every guest shutdown wait for the kill
// timeout.
//
//	podserver [--addr :10256]   serve GET /healthz → 200 "ok"
//	pause                        wait for SIGTERM
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
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
	if err := serve(ctx, *addr); err != nil {
		log.Fatalf("podserver: %v", err)
	}
}

func serve(ctx context.Context, addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	srv := &http.Server{Addr: addr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
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
