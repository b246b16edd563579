// Package cachedir says where pidreuse keeps what it builds (plugin
// versions, node images), so every builder agrees.
package cachedir

import (
	"fmt"
	"os"
	"path/filepath"
)

// SystemDir is root's cache. Not under /root: that is 0700, and QEMU runs
// as libvirt-qemu, which must read the base disk behind every overlay.
const SystemDir = "/var/cache/pidreuse"

// Dir returns the cache directory for kind ("images", "cni-plugins"):
// under $PIDREUSE_CACHE_DIR if set, SystemDir for root, else the user's
// cache dir.
func Dir(kind string) (string, error) {
	if d := os.Getenv("PIDREUSE_CACHE_DIR"); d != "" {
		return filepath.Join(d, kind), nil
	}
	if os.Geteuid() == 0 {
		return filepath.Join(SystemDir, kind), nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache dir: %w (set PIDREUSE_CACHE_DIR)", err)
	}
	return filepath.Join(d, "pidreuse", kind), nil
}
