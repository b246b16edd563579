package cniplugins

import (
	"debug/elf"
	"fmt"
)

// checkELF refuses a binary that cannot run here, so a wrong-arch build in
// a bisect is "skip" (125), not a false verdict.
func checkELF(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%s is not an ELF executable: %w", path, err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("%s is built for %s, not x86-64", path, f.Machine)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%s is not an executable (ELF type %s)", path, f.Type)
	}
	return nil
}
