package vm

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"os"
	"regexp"
	"time"

	"github.com/pidreuse/pidreuse/images"
)

// sshStarted matches what the serial console shows once the guest's sshd
// listens: the line every image writes then (images.SSHListensLine), or
// systemd's own "[  OK  ] Started ssh.service - OpenBSD Secure Shell
// server." (with colour codes around the unit's name), which systemd
// leaves out while a unit holds the console. The image starts sshd after
// network-online.target, so the guest has its address by then: a
// connection QEMU forwards before that waits for TCP's SYN retransmits.
var sshStarted = regexp.MustCompile(regexp.QuoteMeta(images.SSHListensLine) + `|Started .*ssh\.service`)

// consolePoll is how often the console log is read while waiting.
const consolePoll = 100 * time.Millisecond

// consoleSize is how far the console log has grown: a reboot's wait reads
// only what comes after.
func consoleSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// waitConsole waits until, for each of res, a line of the console log past
// offset matches it, and says whether that happened within limit. It is a hint, never a
// verdict: false (no such line by then, or ctx ended) leaves the caller
// to do what it would have done without it.
//
// Why wait for sshd's line before dialing: QEMU's user-mode forward
// accepts a connection while the guest cannot answer it yet, and such a
// connection hangs for the dial attempt's whole timeout (measured under
// TCG: SSH answered 4-15 s after the guest's sshd listened).
func waitConsole(ctx context.Context, path string, offset int64, limit time.Duration, res ...*regexp.Regexp) bool {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	var pending []byte // the end of what was read, after its last newline
	pos := offset
	tick := time.NewTicker(consolePoll)
	defer tick.Stop()
	for {
		chunk, err := readFrom(path, pos)
		if err == nil {
			pos += int64(len(chunk))
			pending = append(pending, chunk...)
			if i := bytes.LastIndexByte(pending, '\n'); i >= 0 {
				rest := res[:0:0]
				for _, re := range res {
					if !re.Match(pending[:i]) {
						rest = append(rest, re)
					}
				}
				if res = rest; len(res) == 0 {
					return true
				}
				pending = append([]byte(nil), pending[i+1:]...)
			}
		}
		select {
		case <-ctx.Done():
			return false
		case <-tick.C:
		}
	}
}

// readFrom reads path from offset to its end; a file not there yet reads
// as nothing.
func readFrom(path string, offset int64) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}
