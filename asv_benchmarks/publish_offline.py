"""``asv publish``, then make the dashboard work without a network.

asv's page loads jQuery, flot, bootstrap and three small plugins from
CDNs; on a machine without internet (a lab machine, CI) it then shows only
its "Can not determine continental origin of swallow" error. This script
publishes the results, fetches the same libraries from the npm registry
(``npm pack``, cached in .asv/vendor-cache), copies them into the
published site's ``vendor/`` folder and points the page at them. A CDN
address it does not know (a newer asv) is an error, not a silently broken
page.

    cd asv_benchmarks && python publish_offline.py && asv preview
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))

#: CDN address -> (npm package, file inside its tarball). Where npm has no
#: minified copy the plain one serves; stupidtable's oldest npm release is
#: 1.1.3 (the CDN copy is 1.0.1; the plugin's one call, $.fn.stupidtable, is
#: the same).
VENDOR = {
    "https://code.jquery.com/jquery-3.3.1.min.js": ("jquery@3.3.1", "dist/jquery.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.min.js":
        ("flot@0.8.3", "jquery.flot.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.time.min.js":
        ("flot@0.8.3", "jquery.flot.time.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.selection.min.js":
        ("flot@0.8.3", "jquery.flot.selection.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/flot/0.8.3/jquery.flot.categories.min.js":
        ("flot@0.8.3", "jquery.flot.categories.js"),
    "https://cdn.jsdelivr.net/npm/flot-orderbars@1.0.0/js/jquery.flot.orderBars.js":
        ("flot-orderbars@1.0.0", "js/jquery.flot.orderBars.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/stupidtable/1.0.1/stupidtable.min.js":
        ("stupid-table-plugin@1.1.3", "stupidtable.min.js"),
    "https://cdnjs.cloudflare.com/ajax/libs/blueimp-md5/2.19.0/js/md5.min.js":
        ("blueimp-md5@2.19.0", "js/md5.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/js/bootstrap.min.js":
        ("bootstrap@3.1.1", "dist/js/bootstrap.min.js"),
    "https://cdn.jsdelivr.net/npm/bootstrap@3.1.1/dist/css/bootstrap.min.css":
        ("bootstrap@3.1.1", "dist/css/bootstrap.min.css"),
}
#: folders copied whole next to a file (bootstrap's css loads ../fonts/)
EXTRA_DIRS = {"bootstrap@3.1.1": ["dist/fonts"]}


def _config():
    with open(os.path.join(HERE, "asv.conf.json")) as fh:
        return json.load(fh)


def _tarball(spec, cache):
    os.makedirs(cache, exist_ok=True)
    name, version = spec.rsplit("@", 1)
    found = glob.glob(os.path.join(cache, f"{name}-{version}.tgz"))
    if found:
        return found[0]
    res = subprocess.run(["npm", "pack", spec, "--pack-destination", cache, "--silent"],
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"npm pack {spec} failed (npm and the npm registry are needed to "
                         f"publish an offline dashboard):\n{res.stderr[-2000:]}")
    return os.path.join(cache, res.stdout.strip().splitlines()[-1])


def vendor(html_dir, cache):
    """Copy every asset into html_dir/vendor and rewrite the html files;
    returns the CDN addresses replaced."""
    target = os.path.join(html_dir, "vendor")
    replaced = set()
    for page in glob.glob(os.path.join(html_dir, "*.html")):
        with open(page, encoding="utf-8") as fh:
            text = fh.read()
        urls = set(re.findall(r'(?:src|href)="(https://(?!github\.com)[^"]+)"', text))
        unknown = sorted(u for u in urls if u not in VENDOR)
        if unknown:
            raise SystemExit(f"{os.path.basename(page)} loads assets this script does not "
                             f"know: {unknown}; add them to VENDOR")
        for url in urls:
            spec, member = VENDOR[url]
            local = f"vendor/{spec.replace('@', '-')}/{member}"
            dest = os.path.join(html_dir, local)
            if not os.path.exists(dest):
                with tarfile.open(_tarball(spec, cache)) as tar:
                    wanted = [f"package/{member}"] + [
                        m.name for d in EXTRA_DIRS.get(spec, []) for m in tar.getmembers()
                        if m.name.startswith(f"package/{d}/") and m.isfile()]
                    for name in wanted:
                        out = os.path.join(target, spec.replace("@", "-"),
                                           name[len("package/"):])
                        os.makedirs(os.path.dirname(out), exist_ok=True)
                        with tar.extractfile(name) as src, open(out, "wb") as dst:
                            shutil.copyfileobj(src, dst)
            # the local copy replaces the address; its CDN checksum no longer applies
            text = re.sub(r'(<(?:script|link)\b[^>]*?)(?:src|href)="' + re.escape(url) + '"'
                          r'([^>]*>)', lambda m: _local_tag(m, local), text)
            replaced.add(url)
        with open(page, "w", encoding="utf-8") as fh:
            fh.write(text)
    return replaced


def _local_tag(match, local):
    head, tail = match.group(1), match.group(2)
    attr = "href" if head.lstrip().startswith("<link") else "src"
    tag = f'{head}{attr}="{local}"{tail}'
    return re.sub(r'\s(?:integrity|crossorigin|referrerpolicy)="[^"]*"', "", tag)


def main():
    res = subprocess.run([sys.executable, "-m", "asv", "publish"], cwd=HERE)
    if res.returncode != 0:
        return res.returncode
    cfg = _config()
    html_dir = os.path.join(HERE, cfg.get("html_dir", "html"))
    cache = os.path.join(HERE, ".asv", "vendor-cache")
    replaced = vendor(html_dir, cache)
    print(f"made {html_dir} work offline: {len(replaced)} assets served from vendor/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
