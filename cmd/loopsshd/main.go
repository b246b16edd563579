// Command loopsshd runs OpenSSH's sshd on 127.0.0.1 with keys of its own
// and prints the qemu+ssh URI that reaches this machine's libvirtd through
// it, until interrupted: a second, real path to libvirtd for trying the
// remote-host code on one machine (README: "Remote libvirt hosts").
//
//	go run ./cmd/loopsshd -dir /tmp/loopsshd
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/pidreuse/pidreuse/internal/loopsshd"
)

func main() {
	dir := flag.String("dir", "/tmp/pidreuse-loopsshd", "where the server's keys, config and known_hosts go")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := loopsshd.Start(ctx, *dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "loopsshd:", err)
		os.Exit(1)
	}
	fmt.Println(srv.URI())
	<-ctx.Done()
	if err := srv.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "loopsshd:", err)
		os.Exit(1)
	}
}
