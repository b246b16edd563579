package cri

import (
	"context"

	"google.golang.org/grpc"
	v1alpha2 "k8s.io/cri-api/pkg/apis/runtime/v1alpha2"

	"github.com/pidreuse/pidreuse/node/agentapi"
)

// v1alpha2Service speaks runtime.v1alpha2, the only version CRI-O 1.16/1.17
// serve. Its messages are v1's under another package name, so this file is
// v1.go with the package swapped: change both together.
type v1alpha2Service struct{ c v1alpha2.RuntimeServiceClient }

func newV1alpha2(conn *grpc.ClientConn) runtimeService {
	return v1alpha2Service{v1alpha2.NewRuntimeServiceClient(conn)}
}

func (s v1alpha2Service) apiVersion() string { return agentapi.CRIv1alpha2 }

func (s v1alpha2Service) version(ctx context.Context) (agentapi.CRIRuntime, error) {
	r, err := s.c.Version(ctx, &v1alpha2.VersionRequest{})
	if err != nil {
		return agentapi.CRIRuntime{}, err
	}
	return agentapi.CRIRuntime{
		RuntimeName:        r.RuntimeName,
		RuntimeVersion:     r.RuntimeVersion,
		ReportedAPIVersion: r.RuntimeApiVersion,
	}, nil
}

func (s v1alpha2Service) listSandboxes(ctx context.Context) ([]agentapi.CRISandbox, error) {
	r, err := s.c.ListPodSandbox(ctx, &v1alpha2.ListPodSandboxRequest{})
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

func (s v1alpha2Service) sandboxStatus(ctx context.Context, id string) (sandboxStatus, error) {
	r, err := s.c.PodSandboxStatus(ctx, &v1alpha2.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		return sandboxStatus{}, err
	}
	st := sandboxStatus{Info: r.Info}
	// Every level may be nil; CRI-O 1.16/1.17 always fill them, from the
	// sandbox's own namespace options.
	if opts := r.GetStatus().GetLinux().GetNamespaces().GetOptions(); opts != nil {
		st.NetworkMode = opts.Network.String()
	}
	return st, nil
}

func (s v1alpha2Service) listContainers(ctx context.Context) ([]agentapi.CRIContainer, error) {
	r, err := s.c.ListContainers(ctx, &v1alpha2.ListContainersRequest{})
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

func (s v1alpha2Service) containerStatus(ctx context.Context, id string) (map[string]string, error) {
	r, err := s.c.ContainerStatus(ctx, &v1alpha2.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		return nil, err
	}
	return r.Info, nil
}
