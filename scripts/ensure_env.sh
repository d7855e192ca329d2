# Source me: create/refresh the project's virtual environment when missing or stale, then activate it.
#   PAPER_REPRO_VENV   where the venv lives (default: .venv in the checkout)
#   PAPER_REPRO_CONLL03 defaults to ../shared/data/conll2003 beside the checkout when that folder exists
_repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
_venv="${PAPER_REPRO_VENV:-$_repo/.venv}"
_stamp="$_venv/.paper-repro-installed"
_want="$(cat "$_repo/pyproject.toml" "$_repo/scripts/install.sh" | sha256sum | cut -c1-16)"
if [ ! -x "$_venv/bin/python" ] || [ "$(cat "$_stamp" 2>/dev/null)" != "$_want" ]; then
  echo "[paper-repro] installing into $_venv" >&2
  python3 -m venv "$_venv"
  PATH="$_venv/bin:$PATH" bash "$_repo/scripts/install.sh"
  echo "$_want" > "$_stamp"
fi
# shellcheck disable=SC1091
. "$_venv/bin/activate"
if [ -z "${PAPER_REPRO_CONLL03:-}" ] && [ -d "$_repo/../shared/data/conll2003" ]; then
  export PAPER_REPRO_CONLL03="$(cd "$_repo/../shared/data/conll2003" && pwd)"
fi
unset _repo _venv _stamp _want
