"""``scopeseg serve``: the local web app over data roots (segment, browse data sets, results)."""

from __future__ import annotations

from . import arg, build_config_of, command, config_keys


@arg("roots", nargs="*", metavar="DATA_ROOT", help="folders the app may read (default: the current folder)")
@arg(
    "--allow-remote",
    action="store_true",
    help="listen on a non-loopback host= (needs token=; anyone who can reach the port and knows it gets in)",
)
@command(
    "serve",
    help="local web app: segment images/videos with prompts, browse data sets, evaluations and runs",
    keys=config_keys("scopeseg.serve.config", "ServeConfig"),
)
def _serve(args) -> int:
    from ..serve import ServeConfig, serve
    from ..serve.app import new_token
    from ..serve.files import Roots

    cfg = build_config_of(ServeConfig, args.overrides, "serve")
    if args.allow_remote and not cfg.token:
        cfg.token = new_token()
    cfg.check_listen(args.allow_remote)
    roots = args.roots or ["."]
    Roots(roots)  # every root checked before anything starts
    url = f"http://{cfg.host}:{cfg.port}/" + (f"?token={cfg.token}" if cfg.token else "")
    print(f"scopeseg serve: {', '.join(roots)} on {url} (Ctrl-C stops)", flush=True)
    serve(roots, cfg, args.allow_remote)
    return 0
