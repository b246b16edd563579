package cri

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

// inspectPID asks CRI-O's HTTP inspect API for a container's PID. CRI-O
// serves that API on the CRI socket itself (cmux: HTTP/1 requests go to
// it, gRPC to the CRI server). In 1.16/1.17 `GET /containers/<id>` also
// resolves a sandbox ID to its infra container (server/inspect.go,
// getContainerInfo) and answers pkg/types.ContainerInfo, whose "pid" is the
// container state's PID: after a reboot, the previous boot's.
func (c *Client) inspectPID(ctx context.Context, id string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://crio/containers/"+url.PathEscape(id), nil)
	if err != nil {
		return 0, fmt.Errorf("CRI-O inspect %s: %w", id, err)
	}
	resp, err := c.inspect.Do(req)
	if err != nil {
		return 0, fmt.Errorf("CRI-O inspect %s: %w", id, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return 0, fmt.Errorf("CRI-O inspect %s: %w", id, err)
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("CRI-O inspect %s: %s: %s", id, resp.Status, strings.TrimSpace(string(body)))
	}
	var ci struct {
		PID int `json:"pid"`
	}
	if err := json.Unmarshal(body, &ci); err != nil {
		return 0, fmt.Errorf("CRI-O inspect %s: %w", id, err)
	}
	return ci.PID, nil
}
