package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/pidreuse/pidreuse/node/cniplugin"
)

// checkPluginDir is cniplugin.CheckDir, made once per plugin file rather
// than before every ADD and DEL: the check runs the plugin (its VERSION
// command), a process start each time, for an answer that cannot change
// while the file does not. A passed check is recorded in the state dir
// under the file's identity — device, inode, size, modification and
// change times — and a file replaced, rewritten or touched in any way has
// another identity (the kernel sets the change time on every write,
// rename or chmod, and nobody can set it back), so it is checked again.
func (a *Agent) checkPluginDir(ctx context.Context, dir string) error {
	plugin := filepath.Join(dir, cniplugin.Loopback)
	id, err := fileIdentity(plugin)
	if err != nil {
		// CheckDir says best what is wrong with a plugin that is not there.
		return cniplugin.CheckDir(ctx, dir)
	}
	record := a.pluginCheckRecord(plugin)
	if seen, err := os.ReadFile(record); err == nil && string(seen) == id {
		return nil
	}
	if err := cniplugin.CheckDir(ctx, dir); err != nil {
		return err
	}
	// Without a record the next step checks again: slower, never wrong.
	_ = writeRecord(record, []byte(id))
	return nil
}

// pluginCheckRecord is where a passed check of plugin is recorded.
func (a *Agent) pluginCheckRecord(plugin string) string {
	sum := sha256.Sum256([]byte(plugin))
	return filepath.Join(a.StateDir, "plugin-checks", hex.EncodeToString(sum[:8]))
}

// fileIdentity names one version of the file at path (symlinks followed).
func fileIdentity(path string) (string, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return "", fmt.Errorf("stat %s: %w", path, err)
	}
	return fmt.Sprintf("%s dev=%d ino=%d size=%d mtime=%d.%09d ctime=%d.%09d\n", path, st.Dev, st.Ino, st.Size,
		st.Mtim.Sec, st.Mtim.Nsec, st.Ctim.Sec, st.Ctim.Nsec), nil
}

// writeRecord writes a small record whole or not at all.
func writeRecord(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
