package cri

import (
	"context"

	"google.golang.org/grpc"
	v1 "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// v1Service speaks runtime.v1, the only version CRI-O 1.34 serves.
type v1Service struct{ c v1.RuntimeServiceClient }

func newV1(conn *grpc.ClientConn) runtimeService { return v1Service{v1.NewRuntimeServiceClient(conn)} }

func (s v1Service) apiVersion() string { return agentapi.CRIv1 }

func (s v1Service) version(ctx context.Context) (agentapi.CRIRuntime, error) {
	r, err := s.c.Version(ctx, &v1.VersionRequest{})
	if err != nil {
		return agentapi.CRIRuntime{}, err
	}
	return agentapi.CRIRuntime{
		RuntimeName:        r.RuntimeName,
		RuntimeVersion:     r.RuntimeVersion,
		ReportedAPIVersion: r.RuntimeApiVersion,
	}, nil
}

func (s v1Service) listSandboxes(ctx context.Context) ([]agentapi.CRISandbox, error) {
	r, err := s.c.ListPodSandbox(ctx, &v1.ListPodSandboxRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]agentapi.CRISandbox, 0, len(r.Items))
	for _, p := range r.Items {
		m := p.GetMetadata()
		out = append(out, agentapi.CRISandbox{
			ID: p.Id, Name: m.GetName(), Namespace: m.GetNamespace(), UID: m.GetUid(),
			Attempt: int(m.GetAttempt()), State: p.State.String(),
			CreatedAt: nanoTime(p.CreatedAt), Labels: p.Labels,
		})
	}
	return out, nil
}

func (s v1Service) sandboxStatus(ctx context.Context, id string) (sandboxStatus, error) {
	r, err := s.c.PodSandboxStatus(ctx, &v1.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		return sandboxStatus{}, err
	}
	st := sandboxStatus{Info: r.Info}
	// Every level may be nil: CRI-O 1.34 omits Linux when the sandbox has
	// no namespace options.
	if opts := r.GetStatus().GetLinux().GetNamespaces().GetOptions(); opts != nil {
		st.NetworkMode = opts.Network.String()
	}
	return st, nil
}

func (s v1Service) listContainers(ctx context.Context) ([]agentapi.CRIContainer, error) {
	r, err := s.c.ListContainers(ctx, &v1.ListContainersRequest{})
	if err != nil {
		return nil, err
	}
	out := make([]agentapi.CRIContainer, 0, len(r.Containers))
	for _, c := range r.Containers {
		out = append(out, agentapi.CRIContainer{
			ID: c.Id, SandboxID: c.PodSandboxId, Name: c.GetMetadata().GetName(),
			Attempt: int(c.GetMetadata().GetAttempt()), State: c.State.String(),
			CreatedAt: nanoTime(c.CreatedAt), Image: c.GetImage().GetImage(), Labels: c.Labels,
		})
	}
	return out, nil
}

func (s v1Service) containerStatus(ctx context.Context, id string) (map[string]string, error) {
	r, err := s.c.ContainerStatus(ctx, &v1.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return nil, err
	}
	return r.Info, nil
}
