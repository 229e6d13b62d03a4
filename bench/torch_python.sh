# torch_python.sh - sourced by the bench scripts that run the PyTorch peers.
# torch_python NAME prints the Python with torch: $PYTHON when set, else the first of python3 and
# /usr/bin/python3 (Debian's python3-torch) that imports torch; else it says so as NAME and fails.
torch_python() {
  local p
  for p in ${PYTHON:-python3 /usr/bin/python3}; do
    if "$p" -c 'import torch' 2>/dev/null; then printf '%s\n' "$p"; return 0; fi
  done
  echo "$1: no python3 with torch found (set PYTHON)" >&2
  return 1
}
