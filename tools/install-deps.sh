#!/usr/bin/env bash
# Installs the Debian packages dpft builds against, when they are missing.
# Usage: tools/install-deps.sh [extra-package ...]   (run by `make demo`, `make test`, `make bench`)
set -euo pipefail

packages=(libopenblas-dev libhdf5-dev libsentencepiece-dev libssl-dev pkg-config libopenmpi-dev openmpi-bin "$@")
missing=()
for package in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if ((${#missing[@]})); then
    echo "dpft: installing missing system packages: ${missing[*]}"
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        command -v sudo >/dev/null || { echo "dpft: need root (or sudo) to install ${missing[*]}" >&2; exit 1; }
        sudo="sudo"
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

command -v swift >/dev/null || { echo "dpft: the Swift toolchain (6.0 or newer) is not on PATH" >&2; exit 1; }
