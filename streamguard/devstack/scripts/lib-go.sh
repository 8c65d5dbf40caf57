# Functions the build-*.sh scripts that compile Go code share; they `source` this file.
# Static binaries (no cgo) from the Go module proxy, with the local toolchain (never a downloaded one).
# No DWARF from the compiler: the linker strips it anyway (-ldflags "-s -w"), and generating it costs compile time.
export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-gcflags=all=-dwarf=false"

# go_wrapper_module NAME OUT: cd into a scratch folder next to OUT (removed on exit) holding an empty module
# local/NAME, where `go get` + `go build` resolve modules whose own go.mod `go install` refuses (replaces).
go_wrapper_module() {
  export GOFLAGS="$GOFLAGS -mod=mod"
  work=$(mktemp -d "${2%/}.work.XXXX")
  trap 'rm -rf "$work"' EXIT
  cd "$work"
  printf 'module local/%s\n\ngo 1.26.0\n' "$1" > go.mod
}

# go_install_into OUT PACKAGE@VERSION [LDFLAGS]: `go install` one command into OUT, moved in once built.
go_install_into() {
  local out=$1 pkg=$2 bin
  bin=$(basename "${pkg%@*}")
  rm -rf "$out.tmp"
  mkdir -p "$out.tmp"
  GOBIN="$out.tmp" go install -trimpath -ldflags "-s -w ${3:-}" "$pkg"
  mkdir -p "$out"
  mv "$out.tmp/$bin" "$out/$bin"
  rmdir "$out.tmp"
}
