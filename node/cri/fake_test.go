package cri

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	v1 "k8s.io/cri-api/pkg/apis/runtime/v1"
	v1alpha2 "k8s.io/cri-api/pkg/apis/runtime/v1alpha2"
)

// fakeRuntime is the state a fake CRI server answers from, in either API
// version: just the calls the client makes, with the runtime's verbose info
// maps given as the runtime would send them.
type fakeRuntime struct {
	name, version, reportedAPI string
	sandboxes                  []fakeSandbox
	containers                 []fakeContainer
	// inspect, when set, is served on the same socket like CRI-O 1.16/1.17's
	// HTTP inspect API: GET /containers/<id> answers {"pid": N}.
	inspect map[string]int
	// block makes the list calls wait for the caller to give up.
	block bool

	mu           sync.Mutex
	statusCalled []string // container IDs asked for their status
}

type fakeSandbox struct {
	id, name, namespace, uid string
	ready                    bool
	network                  int32 // CRI NamespaceMode: 0 POD, 1 CONTAINER, 2 NODE
	noLinux                  bool  // send no Linux status
	info                     map[string]string
	gone                     bool // status answers NotFound (removed after the list)
}

type fakeContainer struct {
	id, sandbox, name string
	attempt           uint32
	state             int32 // CRI ContainerState: 0 CREATED, 1 RUNNING, 2 EXITED
	labels            map[string]string
	info              map[string]string
}

func (f *fakeRuntime) wait(ctx context.Context) error {
	if f.block {
		<-ctx.Done()
		return status.FromContextError(ctx.Err()).Err()
	}
	return nil
}

func (f *fakeRuntime) sandbox(id string) (fakeSandbox, error) {
	for _, s := range f.sandboxes {
		if s.id == id && !s.gone {
			return s, nil
		}
	}
	return fakeSandbox{}, status.Errorf(codes.NotFound, "could not find pod %q", id)
}

func (f *fakeRuntime) container(id string) (fakeContainer, error) {
	f.mu.Lock()
	f.statusCalled = append(f.statusCalled, id)
	f.mu.Unlock()
	for _, c := range f.list() {
		if c.id == id {
			return c, nil
		}
	}
	return fakeContainer{}, status.Errorf(codes.NotFound, "could not find container %q", id)
}

// list is the containers as they are now: a test may change them while
// the server answers.
func (f *fakeRuntime) list() []fakeContainer {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]fakeContainer(nil), f.containers...)
}

// add starts a container, as kubelet would while a caller waits.
func (f *fakeRuntime) add(c fakeContainer) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.containers = append(f.containers, c)
}

// serve starts a fake runtime on a unix socket in a temp dir, serving the
// named API versions, and returns its endpoint.
func serve(t *testing.T, f *fakeRuntime, apis ...string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "crio.sock")
	lis, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	gs := grpc.NewServer()
	for _, api := range apis {
		switch api {
		case "v1":
			v1.RegisterRuntimeServiceServer(gs, &fakeV1{f: f})
		case "v1alpha2":
			v1alpha2.RegisterRuntimeServiceServer(gs, &fakeV1alpha2{f: f})
		default:
			t.Fatalf("unknown API %q", api)
		}
	}
	if f.inspect == nil {
		go gs.Serve(lis)
		t.Cleanup(gs.Stop)
		return "unix://" + sock
	}
	// CRI-O 1.16/1.17 split one socket between gRPC and HTTP/1 (cmux);
	// here net/http takes both and hands HTTP/2 gRPC to the gRPC server.
	mux := http.NewServeMux()
	mux.HandleFunc("GET /containers/{id}", func(w http.ResponseWriter, r *http.Request) {
		pid, ok := f.inspect[r.PathValue("id")]
		if !ok {
			http.Error(w, "can't find the container with id "+r.PathValue("id"), http.StatusNotFound)
			return
		}
		json.NewEncoder(w).Encode(map[string]any{"name": "k8s_POD", "pid": pid, "sandbox": r.PathValue("id")})
	})
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetUnencryptedHTTP2(true)
	hs := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		mux.ServeHTTP(w, r)
	})}
	go hs.Serve(lis)
	t.Cleanup(func() {
		if err := hs.Close(); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Log(err)
		}
	})
	return "unix://" + sock
}

type fakeV1 struct {
	v1.UnimplementedRuntimeServiceServer
	f *fakeRuntime
}

func (s *fakeV1) Version(ctx context.Context, _ *v1.VersionRequest) (*v1.VersionResponse, error) {
	return &v1.VersionResponse{Version: "0.1.0", RuntimeName: s.f.name, RuntimeVersion: s.f.version, RuntimeApiVersion: s.f.reportedAPI}, nil
}

func (s *fakeV1) ListPodSandbox(ctx context.Context, _ *v1.ListPodSandboxRequest) (*v1.ListPodSandboxResponse, error) {
	if err := s.f.wait(ctx); err != nil {
		return nil, err
	}
	r := &v1.ListPodSandboxResponse{}
	for i, sb := range s.f.sandboxes {
		r.Items = append(r.Items, &v1.PodSandbox{
			Id:        sb.id,
			Metadata:  &v1.PodSandboxMetadata{Name: sb.name, Namespace: sb.namespace, Uid: sb.uid},
			State:     map[bool]v1.PodSandboxState{true: v1.PodSandboxState_SANDBOX_READY, false: v1.PodSandboxState_SANDBOX_NOTREADY}[sb.ready],
			CreatedAt: int64(1_700_000_000_000_000_000 + i),
			Labels:    map[string]string{"io.kubernetes.pod.name": sb.name},
		})
	}
	return r, nil
}

func (s *fakeV1) PodSandboxStatus(ctx context.Context, req *v1.PodSandboxStatusRequest) (*v1.PodSandboxStatusResponse, error) {
	sb, err := s.f.sandbox(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	r := &v1.PodSandboxStatusResponse{Status: &v1.PodSandboxStatus{Id: sb.id}}
	if !sb.noLinux {
		r.Status.Linux = &v1.LinuxPodSandboxStatus{Namespaces: &v1.Namespace{Options: &v1.NamespaceOption{Network: v1.NamespaceMode(sb.network)}}}
	}
	if req.Verbose {
		r.Info = sb.info
	}
	return r, nil
}

func (s *fakeV1) ListContainers(ctx context.Context, _ *v1.ListContainersRequest) (*v1.ListContainersResponse, error) {
	if err := s.f.wait(ctx); err != nil {
		return nil, err
	}
	r := &v1.ListContainersResponse{}
	for i, c := range s.f.list() {
		r.Containers = append(r.Containers, &v1.Container{
			Id: c.id, PodSandboxId: c.sandbox,
			Metadata:  &v1.ContainerMetadata{Name: c.name, Attempt: c.attempt},
			Image:     &v1.ImageSpec{Image: "localhost/podserver:latest"},
			State:     v1.ContainerState(c.state),
			CreatedAt: int64(1_700_000_000_000_000_000 + i),
			Labels:    c.labels,
		})
	}
	return r, nil
}

func (s *fakeV1) ContainerStatus(ctx context.Context, req *v1.ContainerStatusRequest) (*v1.ContainerStatusResponse, error) {
	c, err := s.f.container(req.ContainerId)
	if err != nil {
		return nil, err
	}
	r := &v1.ContainerStatusResponse{Status: &v1.ContainerStatus{Id: c.id, State: v1.ContainerState(c.state)}}
	if req.Verbose {
		r.Info = c.info
	}
	return r, nil
}

// fakeV1alpha2 is fakeV1 in the other package: keep the two alike.
type fakeV1alpha2 struct {
	v1alpha2.UnimplementedRuntimeServiceServer
	f *fakeRuntime
}

func (s *fakeV1alpha2) Version(ctx context.Context, _ *v1alpha2.VersionRequest) (*v1alpha2.VersionResponse, error) {
	return &v1alpha2.VersionResponse{Version: "0.1.0", RuntimeName: s.f.name, RuntimeVersion: s.f.version, RuntimeApiVersion: s.f.reportedAPI}, nil
}

func (s *fakeV1alpha2) ListPodSandbox(ctx context.Context, _ *v1alpha2.ListPodSandboxRequest) (*v1alpha2.ListPodSandboxResponse, error) {
	if err := s.f.wait(ctx); err != nil {
		return nil, err
	}
	r := &v1alpha2.ListPodSandboxResponse{}
	for i, sb := range s.f.sandboxes {
		r.Items = append(r.Items, &v1alpha2.PodSandbox{
			Id:        sb.id,
			Metadata:  &v1alpha2.PodSandboxMetadata{Name: sb.name, Namespace: sb.namespace, Uid: sb.uid},
			State:     map[bool]v1alpha2.PodSandboxState{true: v1alpha2.PodSandboxState_SANDBOX_READY, false: v1alpha2.PodSandboxState_SANDBOX_NOTREADY}[sb.ready],
			CreatedAt: int64(1_700_000_000_000_000_000 + i),
			Labels:    map[string]string{"io.kubernetes.pod.name": sb.name},
		})
	}
	return r, nil
}

func (s *fakeV1alpha2) PodSandboxStatus(ctx context.Context, req *v1alpha2.PodSandboxStatusRequest) (*v1alpha2.PodSandboxStatusResponse, error) {
	sb, err := s.f.sandbox(req.PodSandboxId)
	if err != nil {
		return nil, err
	}
	r := &v1alpha2.PodSandboxStatusResponse{Status: &v1alpha2.PodSandboxStatus{Id: sb.id}}
	if !sb.noLinux {
		r.Status.Linux = &v1alpha2.LinuxPodSandboxStatus{Namespaces: &v1alpha2.Namespace{Options: &v1alpha2.NamespaceOption{Network: v1alpha2.NamespaceMode(sb.network)}}}
	}
	if req.Verbose {
		r.Info = sb.info
	}
	return r, nil
}

func (s *fakeV1alpha2) ListContainers(ctx context.Context, _ *v1alpha2.ListContainersRequest) (*v1alpha2.ListContainersResponse, error) {
	if err := s.f.wait(ctx); err != nil {
		return nil, err
	}
	r := &v1alpha2.ListContainersResponse{}
	for i, c := range s.f.list() {
		r.Containers = append(r.Containers, &v1alpha2.Container{
			Id: c.id, PodSandboxId: c.sandbox,
			Metadata:  &v1alpha2.ContainerMetadata{Name: c.name, Attempt: c.attempt},
			Image:     &v1alpha2.ImageSpec{Image: "localhost/podserver:latest"},
			State:     v1alpha2.ContainerState(c.state),
			CreatedAt: int64(1_700_000_000_000_000_000 + i),
			Labels:    c.labels,
		})
	}
	return r, nil
}

func (s *fakeV1alpha2) ContainerStatus(ctx context.Context, req *v1alpha2.ContainerStatusRequest) (*v1alpha2.ContainerStatusResponse, error) {
	c, err := s.f.container(req.ContainerId)
	if err != nil {
		return nil, err
	}
	r := &v1alpha2.ContainerStatusResponse{Status: &v1alpha2.ContainerStatus{Id: c.id, State: v1alpha2.ContainerState(c.state)}}
	if req.Verbose {
		r.Info = c.info
	}
	return r, nil
}
