// Package cri reads a node's CRI runtime (CRI-O) over its gRPC socket: the
// runtime's version, its pod sandboxes with their network namespaces, and
// its containers with their PIDs. It speaks runtime.v1 or runtime.v1alpha2,
// whichever the runtime answers, because the node profiles run both CRI-O
// 1.34 (v1 only) and CRI-O 1.16/1.17 (v1alpha2 only), and no crictl that
// can be had speaks the latter.
//
// Every call takes its deadline from the context: a runtime that hangs
// (CRI-O stuck in StopPodSandbox, say) must not hang the step.
package cri

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// DefaultEndpoint is CRI-O's socket, as kubelet and crictl name it.
const DefaultEndpoint = "unix:///var/run/crio/crio.sock"

// CrictlConfig is where the node images name their runtime's endpoint,
// for crictl and for nodecri alike.
const CrictlConfig = "/etc/crictl.yaml"

// EndpointFromCrictlConfig returns the runtime-endpoint of a crictl.yaml
// (the flat key: value file crictl reads), or "" when it names none.
func EndpointFromCrictlConfig(data []byte) string {
	for _, line := range strings.Split(string(data), "\n") {
		key, value, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(key) == "runtime-endpoint" {
			return strings.Trim(strings.TrimSpace(value), `"'`)
		}
	}
	return ""
}

// maxMsgSize is kubelet's own limit for CRI responses: verbose statuses
// carry whole runtime specs, and gRPC's 4 MiB default is easy to pass.
const maxMsgSize = 16 << 20

// runtimeService is one CRI API version's client, reduced to the calls the
// agent makes and to version-free types; v1.go and v1alpha2.go implement it.
type runtimeService interface {
	apiVersion() string
	version(ctx context.Context) (agentapi.CRIRuntime, error)
	listSandboxes(ctx context.Context) ([]agentapi.CRISandbox, error)
	sandboxStatus(ctx context.Context, id string) (sandboxStatus, error)
	listContainers(ctx context.Context) ([]agentapi.CRIContainer, error)
	containerStatus(ctx context.Context, id string) (info map[string]string, err error)
}

// sandboxStatus is what the agent takes from a verbose PodSandboxStatus.
type sandboxStatus struct {
	NetworkMode string            // POD, CONTAINER, NODE; "" without Linux status
	Info        map[string]string // the runtime's verbose info, as sent
}

// Client is a connection to one runtime, in the API version it answered.
type Client struct {
	endpoint string
	conn     *grpc.ClientConn
	rt       runtimeService
	runtime  agentapi.CRIRuntime
	inspect  *http.Client // CRI-O's HTTP inspect API, same socket
}

// Dial connects to a runtime at endpoint (unix:///path or /path) and asks
// its version, in runtime.v1 first and, if the runtime does not serve v1,
// in runtime.v1alpha2. The client then speaks the version that answered.
func Dial(ctx context.Context, endpoint string) (*Client, error) {
	socket, err := socketPath(endpoint)
	if err != nil {
		return nil, err
	}
	// gRPC connects lazily and would report a missing socket as a generic
	// "Unavailable"; this says what to do about it.
	if _, err := os.Stat(socket); err != nil {
		return nil, notReachable(endpoint, err)
	}
	conn, err := grpc.NewClient("unix://"+socket,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize)))
	if err != nil {
		return nil, fmt.Errorf("cri: connect to %s: %w", endpoint, err)
	}
	c := &Client{endpoint: endpoint, conn: conn}
	c.inspect = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	if err := c.detect(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// detect picks the API version with the Version RPC. A runtime that does
// not serve a version's RuntimeService answers Unimplemented ("unknown
// service"): only that code moves on to the next version, so a runtime
// that is down is reported as down, not as speaking neither.
func (c *Client) detect(ctx context.Context) error {
	var errs []error
	for _, rt := range []runtimeService{newV1(c.conn), newV1alpha2(c.conn)} {
		v, err := rt.version(ctx)
		if status.Code(err) == codes.Unimplemented {
			errs = append(errs, fmt.Errorf("runtime.%s: %w", rt.apiVersion(), err))
			continue
		}
		c.rt = rt
		if err != nil {
			return c.rpcError(ctx, "version", err)
		}
		v.Endpoint = c.endpoint
		v.APIVersion = rt.apiVersion()
		c.runtime = v
		return nil
	}
	return fmt.Errorf("CRI runtime at %s serves neither runtime.v1 nor runtime.v1alpha2: %w", c.endpoint, errors.Join(errs...))
}

// Close ends the connection.
func (c *Client) Close() error {
	c.inspect.CloseIdleConnections()
	return c.conn.Close()
}

// Runtime is the runtime's version, with the API version the client speaks.
func (c *Client) Runtime() agentapi.CRIRuntime { return c.runtime }

// socketPath accepts what kubelet and crictl accept for a local runtime.
func socketPath(endpoint string) (string, error) {
	path, ok := strings.CutPrefix(endpoint, "unix://")
	if !ok && strings.Contains(endpoint, "://") {
		return "", fmt.Errorf("cri: endpoint %q: only unix sockets are supported (unix:///path)", endpoint)
	}
	if !strings.HasPrefix(path, "/") {
		return "", fmt.Errorf("cri: endpoint %q: the socket path must be absolute (unix:///path)", endpoint)
	}
	return path, nil
}

func notReachable(endpoint string, err error) error {
	return fmt.Errorf("CRI runtime not reachable at %s: is its service (crio, cri-docker) running? (%w)", endpoint, err)
}

// rpcError words a failed call. A runtime that went away (or a socket
// nobody listens on, left by a crashed crio) is "not reachable"; a call cut
// by the deadline wraps the context's error, so callers can tell a timeout.
func (c *Client) rpcError(ctx context.Context, op string, err error) error {
	if ctxErr := contextError(ctx, err); ctxErr != nil {
		return fmt.Errorf("cri %s at %s: %w (%v)", op, c.endpoint, ctxErr, err)
	}
	if status.Code(err) == codes.Unavailable {
		return notReachable(c.endpoint, err)
	}
	return fmt.Errorf("cri %s (runtime.%s) at %s: %w", op, c.rt.apiVersion(), c.endpoint, err)
}

// contextError is the context error that ended a call, if one did. gRPC
// sends the deadline to the server, whose own timer may fire first: the
// call then fails with DeadlineExceeded while ctx.Err() is still nil.
func contextError(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return ctxErr
	}
	switch status.Code(err) {
	case codes.DeadlineExceeded:
		return context.DeadlineExceeded
	case codes.Canceled:
		return context.Canceled
	}
	return nil
}

// itemFatal says whether a failed per-item call (one sandbox's or one
// container's status) ends the whole step: it does when the runtime or the
// deadline is gone, since every later call would fail the same way. Other
// errors (the item was removed after the list) stay with the item.
func itemFatal(ctx context.Context, err error) bool {
	return contextError(ctx, err) != nil || status.Code(err) == codes.Unavailable
}
