"""The policy linter: mistakes a valid policy file can still hold, found before a customer sees them.

`load_policy_file` rejects what cannot be used at all (unknown keys, impossible dates, unquoted
money, levels out of order on one anchor, a move to a policy that does not exist). The linter
looks further, with the template folder and, where given, the database:

- error: a level timed a negative number of days after the previous level (it would run before
  the customer's deadline for that level); a template that no language folder of the set has for
  a channel a level uses (nobody would get the document).
- warning: a level timed 0 days after the previous level (it runs on the customer's last day to
  pay); a template missing in one language folder (its customers get the English one); a fee in a
  currency the version's thresholds do not name; routing criteria that can never all hold, or a
  policy nothing routes to; a new version whose `effective_from` lies before the last day computed
  (with the number of open cases of that policy opened since then).

Every finding is one line: `FILE: KEY (L<n> "LEVEL NAME"): error|warning: message` (the key is
the YAML path, counted from 0; L<n> counts levels from 1 as everything else does). `dunning policy
validate` prints them (exit 1 on an error); `dunning run` logs the warnings before it plans and
stops on an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pipeline.config.policy import DOCUMENT_ACTIONS, PolicyFile, action_channel, action_template

# The template files each channel renders (pipeline/delivery/render/templates.py): an email carries
# the letter as its PDF attachment; the outbox and manual channels write the same files.
CHANNEL_KINDS = {
    "sms": ("sms.txt",),
    "letter": ("letter.html",),
    "registered_letter": ("letter.html",),
}
EMAIL_KINDS = ("subject.txt", "txt", "html", "letter.html")
FALLBACK_LANGUAGE = "en"  # as pipeline.delivery.render.templates (which imports Jinja2; this module must not)


@dataclass(frozen=True)
class Finding:
    severity: str  # "error" | "warning"
    file: Path
    key: str  # e.g. policies[0].versions[1].levels[2] (Final notice)
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.severity}: {self.message}"


class PolicyLintError(ValueError):
    """The linter found errors in the policy file: a live day plans and sends nothing."""

    def __init__(self, findings: list[Finding]) -> None:
        self.findings = findings  # every finding, errors first
        errors = "\n".join(str(f) for f in findings if f.severity == "error")
        super().__init__(f"{errors}\nnothing planned or sent: fix the policy file first")


def before_a_live_day(settings, con=None) -> list[Finding]:
    """The linter as a live day runs it before it ingests anything (`dunning run`; in Dagster the
    `billing_inputs` step of a day that is no backfill): returns the findings, all warnings; raises
    PolicyLintError if any is an error, PolicyError if the file does not load. `con` (optional) is
    the database before the day loads the policy, for the versions taking effect retroactively."""
    from pipeline.config.policy import load_policy_file

    findings = lint(settings.policy_file, load_policy_file(settings.policy_file), settings.templates, con)
    if any(f.severity == "error" for f in findings):
        raise PolicyLintError(findings)
    return findings


def lint(path: Path, policies: PolicyFile, templates: Path | None = None, con=None) -> list[Finding]:
    """Every finding for a policy file that loaded; errors first, then warnings, each in file order."""
    found: list[Finding] = []
    for pi, policy in enumerate(policies.policies):
        for vi, version in enumerate(policy.versions):
            where = f"policies[{pi}].versions[{vi}]"
            found += _timing(path, where, version)
            found += _fees(path, where, version)
            found += _criteria(path, where, version)
            if templates is not None:
                found += _templates(path, where, version, Path(templates))
    found += _unrouted(path, policies)
    if con is not None:
        found += _retroactive(path, policies, con)
    return sorted(found, key=lambda f: f.severity != "error")


def _level_key(where: str, li: int, level) -> str:
    return f'{where}.levels[{li}] (L{li + 1} "{level.name}")'


def _timing(path: Path, where: str, version) -> list[Finding]:
    out = []
    first = True
    for li, level in enumerate(version.levels):
        if not level.enabled:
            continue
        if level.timing.after == "previous_level" and not first:
            days = level.timing.days
            if days < 0:
                out.append(Finding("error", path, _level_key(where, li, level),
                                   f"timed {days} days after the previous level's own due date: it would run "
                                   "before the customer's deadline for the previous level"))
            elif days == 0:
                out.append(Finding("warning", path, _level_key(where, li, level),
                                   "timed 0 days after the previous level's own due date: it runs on the "
                                   "customer's last day to pay the previous level"))
        first = False
    return out


def _fees(path: Path, where: str, version) -> list[Finding]:
    if not version.thresholds:
        return []
    out = []
    for li, level in enumerate(version.levels):
        for currency in sorted(set(level.fee) - set(version.thresholds)):
            out.append(Finding("warning", path, f"{_level_key(where, li, level)}.fee.{currency}",
                               f"a fee in {currency}, but the thresholds name only "
                               f"{', '.join(sorted(version.thresholds))}: {currency} cases are dunned from the "
                               "first cent"))
    return out


def _criteria(path: Path, where: str, version) -> list[Finding]:
    """Criteria on one field that can never all hold: the rule routes nothing."""
    if version.routing is None or not version.routing.enabled:
        return []
    by_field: dict[str, list] = {}
    for c in version.routing.criteria:
        by_field.setdefault(c.field, []).append(c)
    out = []
    for field, criteria in by_field.items():
        allowed: set[str] | None = None  # the values the criteria leave possible (None: any)
        excluded: set[str] = set()
        must_exist = must_not_exist = False
        for c in criteria:
            values = {str(v).lower() if isinstance(v, bool) else str(v) for v in (c.values or [c.value])}
            if c.op in ("is", "in"):
                allowed = values if allowed is None else allowed & values
                must_exist = True
            elif c.op in ("is_not", "not_in"):
                excluded |= values
            elif c.op == "exists":
                must_exist = True
            else:
                must_not_exist = True
        if (allowed is not None and not allowed - excluded) or (must_exist and must_not_exist):
            out.append(Finding("warning", path, f"{where}.routing.criteria",
                               f"the criteria on {field} can never all hold: this rule routes nothing"))
    return out


def _unrouted(path: Path, policies: PolicyFile) -> list[Finding]:
    """A policy no rule routes to and no move names: only contracts that name it reach it."""
    moved_to = {a.policy for p in policies.policies for v in p.versions for lv in v.levels for a in lv.actions
                if a.type == "move_to_policy"}
    moved_to |= {v.experiment.challenger for p in policies.policies for v in p.versions if v.experiment}
    out = []
    for pi, policy in enumerate(policies.policies):
        routed = any(v.routing is not None and v.routing.enabled for v in policy.versions)
        disabled = any(v.routing is not None and not v.routing.enabled for v in policy.versions)
        if not policy.default and not routed and policy.handle not in moved_to:
            rule = "its routing rule is disabled" if disabled else "no routing rule"
            out.append(Finding("warning", path, f"policies[{pi}] ({policy.handle})",
                               f"{rule}, no move_to_policy and no experiment leads here: only contracts whose policy column "
                               f"names {policy.handle} use it"))
    return out


def _templates(path: Path, where: str, version, root: Path) -> list[Finding]:
    folder = root / version.template_set
    if not folder.is_dir():
        return [Finding("error", path, f"{where}.template_set",
                        f"no template set {version.template_set!r} in {root}")]
    languages = sorted(d.name for d in folder.iterdir() if d.is_dir() and len(d.name) in (2, 3) and d.name.islower())
    out = []
    for li, level in enumerate(version.levels):
        for action in level.actions:
            if action.type not in DOCUMENT_ACTIONS:
                continue
            template, channel = action_template(action, level), action_channel(action, level)
            kinds = CHANNEL_KINDS.get(channel, EMAIL_KINDS)
            missing_everywhere = [k for k in kinds if not (folder / FALLBACK_LANGUAGE / f"{template}.{k}").is_file()
                                  and not any((folder / lang / f"{template}.{k}").is_file() for lang in languages)]
            key = f"{_level_key(where, li, level)}.template"
            if missing_everywhere:
                out.append(Finding("error", path, key,
                                   f"template {template!r} ({channel}) has no {', '.join(missing_everywhere)} in "
                                   f"template set {version.template_set!r}: nobody would get this document"))
                continue
            for lang in languages:
                gaps = [k for k in kinds if not (folder / lang / f"{template}.{k}").is_file()]
                if gaps and lang != FALLBACK_LANGUAGE:
                    fallback = all((folder / FALLBACK_LANGUAGE / f"{template}.{k}").is_file() for k in gaps)
                    out.append(Finding("warning" if fallback else "error", path, key,
                                       f"template {template!r} ({channel}) has no {', '.join(gaps)} in "
                                       f"{version.template_set}/{lang}: " + (
                                           "those customers get the English text" if fallback
                                           else "those customers would get no document")))
    return out


def _retroactive(path: Path, policies: PolicyFile, con) -> list[Finding]:
    """A version the database does not know yet, taking effect before the last day computed."""
    latest = con.execute("select max(as_of) from run_log").fetchall()[0][0] if _has_table(con, "run_log") else None
    if latest is None or not _has_table(con, "policy_versions"):
        return []
    known = {r[0] for r in con.execute("select policy_version from policy_versions").fetchall()}
    out = []
    for pi, policy in enumerate(policies.policies):
        for vi, version in enumerate(policy.versions):
            if policy.version_id(version) in known or version.effective_from > latest:
                continue
            [(open_cases,)] = con.execute(
                """select count(*) from case_register
                   where policy_id = ? and closed_on is null and opened_on >= ?""",
                [policy.handle, version.effective_from]).fetchall()
            out.append(Finding("warning", path, f"policies[{pi}].versions[{vi}].effective_from",
                               f"{version.effective_from} is before the last day computed ({latest}): days already "
                               f"computed keep the versions they ran under, and {open_cases} open case(s) of "
                               f"{policy.handle} opened since {version.effective_from} keep theirs; to apply it "
                               f"to them, run `dunning backfill --from {version.effective_from} --to {latest}`"))
    return out


def _has_table(con, name: str) -> bool:
    return bool(con.execute("select count(*) from duckdb_tables() where table_name = ? and schema_name = 'main'",
                            [name]).fetchall()[0][0])
