//go:build unix

package keys

import (
	"io/fs"
	"os"
	"syscall"
)

// chownLike gives f the owner and group of like, where the process may
// (as root); otherwise f keeps the process's, which is then like's too, or
// the process could not have read like.
func chownLike(f *os.File, like fs.FileInfo) {
	if st, ok := like.Sys().(*syscall.Stat_t); ok {
		f.Chown(int(st.Uid), int(st.Gid))
	}
}
