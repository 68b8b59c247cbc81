#!/usr/bin/env bash
# docs.readme_config: README.md's configuration reference lists exactly the
# keys, types, defaults, ranges and descriptions that needlewatch-collector
# --help and needlewatch-agent --help print. Fails with a diff when they
# differ; the fix is `deploy/gen-config-doc.sh` (then commit README.md).
# Usage: readme_config.sh COLLECTOR AGENT
set -euo pipefail
collector=${1:?usage: readme_config.sh COLLECTOR AGENT}
agent=${2:?usage: readme_config.sh COLLECTOR AGENT}
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
exec bash "$root/deploy/gen-config-doc.sh" --check --collector "$collector" --agent "$agent" \
  --readme "$root/README.md"
