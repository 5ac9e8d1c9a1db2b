#!/usr/bin/env bash
# Publish a .NET console project as a self-contained linux-x64 app and pack it for the GPU machine,
# which has no .NET SDK or runtime. Run from the project's repository root:
#   perf/Gpu/pack.sh path/to/App.csproj [extra files or folders to ship beside it ...]
# Result: .device/app.tar.xz (git-ignored through .git/info/exclude, so name .device among the paths sent with
# the working tree) and start the command on the GPU machine with:  mkdir -p .run && tar xJf .device/app.tar.xz -C .run && .run/app/<AssemblyName> ...
# Extra files land in .run/app/extra/. Keep the whole working tree under 64 MiB.
set -euo pipefail
proj=${1:?usage: pack.sh App.csproj [extra files...]}; shift
root=$(git rev-parse --show-toplevel)
cd "$root"
grep -qx '/.device/' .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo '/.device/' >> .git/info/exclude; }
rm -rf .device && mkdir -p .device/app
dotnet publish "$proj" -c Release -r linux-x64 --self-contained true -p:PublishTrimmed=false \
  -p:DebugType=none -p:GenerateDocumentationFile=false -o .device/app --nologo -v quiet
if [ $# -gt 0 ]; then mkdir -p .device/app/extra && cp -r "$@" .device/app/extra/; fi
tar -C .device -cf - app | xz -T2 -6 > .device/app.tar.xz
rm -rf .device/app
echo "packed: $(du -h .device/app.tar.xz | cut -f1) in .device/app.tar.xz (at most 64 MiB of working tree travel in all, this included)"
