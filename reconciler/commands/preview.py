"""``reconciler preview [PATH...] [--base GIT_REF] [--directory FILE]``: one Markdown comment for a pull request.

The comment starts with a hidden marker (``<!-- reconciler-preview -->``) so a workflow edits one sticky comment.
Exit 0 when the comment was written; 1 when the manifests are invalid or a mandatory policy finding blocks them
(the comment, which shows why, is still written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reconciler.errors import ReconcilerError


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "preview", help="one Markdown pull-request comment: the Azure side and the SCIM side of a change",
        description="Compare the manifests at a git revision with the working tree (declared Azure resources, "
                    "offline) and plan each app's SCIM target live when it can be reached (read-only).")
    parser.add_argument("paths", nargs="*", default=["manifests"], metavar="PATH",
                        help="manifest files or folders (default: manifests/)")
    parser.add_argument("--base", default="HEAD", metavar="GIT_REF",
                        help="the revision to compare with, e.g. the pull request's base commit (default: HEAD)")
    parser.add_argument("--directory", metavar="FILE", help="a directory snapshot instead of the manifest's source")
    parser.add_argument("--target", metavar="URL", help="the SCIM base URL instead of the manifest's (one app only)")
    parser.add_argument("--mask-pii", action="store_true",
                        help="replace user names and emails with stable short hashes "
                             "(keyed with $RECONCILER_MASK_SALT when set)")
    parser.add_argument("--pulumi-output", metavar="FILE",
                        help="append this `pulumi preview --diff` output in a collapsed block")
    parser.add_argument("--out", metavar="FILE", help="write the comment to FILE instead of stdout")
    parser.add_argument("--max-chars", type=int, default=None, metavar="N",
                        help="the size limit of the comment (default and maximum 65000)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from reconciler.outputs import write_private
    from reconciler.preview.build import PreviewOptions, render_preview
    from reconciler.report.budget import checked_limit

    limit = checked_limit(args.max_chars, "preview")
    attachments = []
    if args.pulumi_output:
        try:
            attachments.append(("pulumi preview --diff",
                                Path(args.pulumi_output).read_text(encoding="utf-8", errors="replace")))
        except OSError as error:
            raise ReconcilerError(f"{args.pulumi_output}: cannot read: {error.strerror or error}") from None
    options = PreviewOptions(paths=args.paths, base=args.base, directory=args.directory, target=args.target,
                             mask_pii=args.mask_pii, attachments=attachments, limit=limit)
    comment, preview = render_preview(options)
    if args.out:
        try:
            write_private(args.out, comment)
        except OSError as error:
            raise ReconcilerError(f"{args.out}: cannot write: {error.strerror or error}") from None
    else:
        sys.stdout.write(comment)
    for problem in preview.problems:
        print(problem, file=sys.stderr)
    for violation in preview.violations:
        print(violation, file=sys.stderr)
    if preview.azure_reason:
        print(f"preview: Azure side not evaluated: {preview.azure_reason}", file=sys.stderr)
    return 1 if preview.blocking else 0
