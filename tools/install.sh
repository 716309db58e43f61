#!/usr/bin/env bash
# Installs dpft under a prefix (`make install`), or removes it (`make uninstall`):
#
#   tools/install.sh PREFIX [BINARY]       # BINARY defaults to .build/release/dpft
#   tools/install.sh --uninstall PREFIX
#
# PREFIX/bin/dpft                         the binary
# PREFIX/share/dpft/recipes/              built-in recipes, data/, models/, rules/
# PREFIX/share/dpft/checkpoints/          base.h5, moe-base.h5, tokenizer.model
# PREFIX/share/{bash-completion,zsh,fish}  shell completions (dpft --generate-completion-script)
#
# An installed dpft finds its assets in ../share/dpft beside its bin/ folder. DESTDIR, when
# set, is put before PREFIX (staged installs for packaging). The tests install with the debug
# binary into a temporary prefix (InstallTests), so this script is the one copy of the logic.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

completion_files=(share/bash-completion/completions/dpft share/zsh/site-functions/_dpft
                  share/fish/vendor_completions.d/dpft.fish)

if [[ "${1:-}" == "--uninstall" ]]; then
    dest="${DESTDIR:-}${2:?usage: tools/install.sh --uninstall PREFIX}"
    rm -f "$dest/bin/dpft"
    rm -rf "$dest/share/dpft"
    for file in "${completion_files[@]}"; do rm -f "$dest/$file"; done
    echo "removed dpft from $dest"
    exit 0
fi

dest="${DESTDIR:-}${1:?usage: tools/install.sh PREFIX [BINARY]}"
binary="${2:-$root/.build/release/dpft}"
[[ -x "$binary" ]] || { echo "error: $binary is not built (make release)" >&2; exit 1; }
share="$dest/share/dpft"

install -d "$dest/bin" "$share/recipes/data" "$share/recipes/models" "$share/recipes/rules" "$share/checkpoints"
install -m 755 "$binary" "$dest/bin/dpft"
install -m 644 "$root"/recipes/*.json "$share/recipes/"
install -m 644 "$root"/recipes/data/* "$share/recipes/data/"
install -m 644 "$root"/recipes/models/*.json "$share/recipes/models/"
install -m 644 "$root"/recipes/rules/*.json "$share/recipes/rules/"
install -m 644 "$root"/checkpoints/{base.h5,moe-base.h5,tokenizer.model} "$share/checkpoints/"

shells=(bash zsh fish)
for i in "${!shells[@]}"; do
    file="$dest/${completion_files[$i]}"
    install -d "$(dirname "$file")"
    "$dest/bin/dpft" --generate-completion-script "${shells[$i]}" > "$file"
done
echo "installed dpft in $dest/bin, its recipes, data and base models in $share ($(du -sh "$share" | cut -f1))"
