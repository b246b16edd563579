package images

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// keyPair is an ed25519 key in the formats OpenSSH reads.
type keyPair struct {
	private    []byte // "OPENSSH PRIVATE KEY" PEM
	public     []byte // raw ed25519 public key, for tests
	authorized string // "ssh-ed25519 AAAA... comment\n"
}

// newKeyPair generates a fresh key. Keys are made per build (not per input
// hash) in Go, so no ssh-keygen is needed and no key leaves the cache entry.
func newKeyPair(comment string) (*keyPair, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating ed25519 key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, comment)
	if err != nil {
		return nil, fmt.Errorf("encoding ed25519 private key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("encoding ed25519 public key: %w", err)
	}
	line := strings.TrimSuffix(string(ssh.MarshalAuthorizedKey(sshPub)), "\n")
	return &keyPair{
		private:    pem.EncodeToMemory(block),
		public:     pub,
		authorized: line + " " + comment + "\n",
	}, nil
}
