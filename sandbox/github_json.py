"""GitHub's JSON shapes of the world's records: users, repos, pull requests, issues, reviews,
commits, workflow runs and check runs, as GitHub REST v3 returns them.

A mixin of `sandbox.github.GitHubApi` (the routes), which holds the indexes these read
(`org`, `parents`, the `_users` cache).
"""

from __future__ import annotations

import hashlib

from sandbox.model import CheckRun, Commit, GhIssue, GhUser, Pull, Repo, Review, WorkflowRun, iso

_ORG_ID = 98_765_432
_WORKFLOW = ("CI", ".github/workflows/ci.yml")
_WEB_FLOW = {
    "login": "web-flow",
    "id": 19864447,
    "node_id": "MDQ6VXNlcjE5ODY0NDQ3",
    "type": "User",
    "site_admin": False,
    "html_url": "https://github.com/web-flow",
    "avatar_url": "https://avatars.githubusercontent.com/u/19864447?v=4",
}
_LABEL_COLORS = {"bug": "d73a4a", "dependencies": "0366d6", "automated": "ededed"}
_ACTIONS_APP = {
    "id": 15368,
    "slug": "github-actions",
    "node_id": "MDM6QXBwMTUzNjg=",
    "name": "GitHub Actions",
    "owner": {"login": "github", "id": 9919, "node_id": "MDEyOk9yZ2FuaXphdGlvbjk5MTk=", "type": "Organization"},
    "description": "Automate your workflow from idea to production",
    "external_url": "https://help.github.com/en/actions",
    "html_url": "https://github.com/apps/github-actions",
}


def _node(prefix: str, n: int | str) -> str:
    return f"{prefix}_kwDO{hashlib.md5(str(n).encode()).hexdigest()[:12]}"


def _fake_int(seed: str, digits: int) -> int:
    return int(hashlib.md5(seed.encode()).hexdigest(), 16) % 10 ** digits + 10 ** (digits - 1)


def fake_sha(seed: str) -> str:
    return hashlib.sha1(seed.encode()).hexdigest()


class GitHubShapes:
    def _user(self, user: GhUser | None) -> dict | None:
        if user is None:
            return None
        if (found := self._users.get(user.login)) is None:
            bot = user.type == "Bot"
            found = self._users[user.login] = {
                "login": user.login,
                "id": user.id,
                "node_id": _node("U", user.id),
                "avatar_url": f"https://avatars.githubusercontent.com/u/{user.id}?v=4",
                "html_url": f"https://github.com/{'apps/' + user.login[:-5] if bot else user.login}",
                "type": user.type,
                "site_admin": False,
            }
        return found

    def _owner(self) -> dict:
        return {
            "login": self.org.login,
            "id": _ORG_ID,
            "node_id": _node("O", _ORG_ID),
            "type": "Organization",
            "html_url": f"https://github.com/{self.org.login}",
            "site_admin": False,
        }

    def _repo_json(self, repo: Repo, api: str) -> dict:
        return {
            "id": repo.id,
            "node_id": _node("R", repo.id),
            "name": repo.name,
            "full_name": repo.full_name,
            "private": True,
            "owner": self._owner(),
            "html_url": f"https://github.com/{repo.full_name}",
            "description": repo.description,
            "fork": False,
            "url": f"{api}/repos/{repo.full_name}",
            "created_at": iso(repo.created_at),
            "updated_at": iso(self.org.end),
            "pushed_at": iso(self.org.end),
            "language": repo.language,
            "archived": False,
            "disabled": False,
            "visibility": "private",
            "default_branch": repo.default_branch,
        }

    def _labels(self, names: tuple[str, ...]) -> list[dict]:
        return [
            {
                "id": int(hashlib.md5(n.encode()).hexdigest()[:8], 16),
                "name": n,
                "color": _LABEL_COLORS.get(n, "ededed"),
                "default": n == "bug",
            }
            for n in names
        ]

    @staticmethod
    def _association(user: GhUser) -> str:
        return "NONE" if user.type == "Bot" else "MEMBER"

    def _pull_json(self, pull: Pull, api: str) -> dict:
        full, url = pull.repo.full_name, f"{api}/repos/{pull.repo.full_name}/pulls/{pull.number}"
        short_repo = {"id": pull.repo.id, "name": pull.repo.name, "full_name": full, "private": True}
        return {
            "url": url,
            "id": pull.id,
            "node_id": _node("PR", pull.id),
            "html_url": pull.html_url,
            "diff_url": f"{pull.html_url}.diff",
            "patch_url": f"{pull.html_url}.patch",
            "issue_url": f"{api}/repos/{full}/issues/{pull.number}",
            "number": pull.number,
            "state": pull.state,
            "locked": False,
            "title": pull.title,
            "user": self._user(pull.user),
            "body": pull.body,
            "labels": self._labels(pull.labels),
            "created_at": iso(pull.created_at),
            "updated_at": iso(pull.updated_at),
            "closed_at": iso(pull.closed_at),
            "merged_at": iso(pull.merged_at),
            "merge_commit_sha": pull.merge_sha,
            "assignee": None,
            "assignees": [],
            "requested_reviewers": [],
            "draft": pull.draft,
            "head": {
                "label": f"{self.org.login}:{pull.head_ref}",
                "ref": pull.head_ref,
                "sha": pull.head_sha,
                "user": self._owner(),
                "repo": short_repo,
            },
            "base": {
                "label": f"{self.org.login}:{pull.repo.default_branch}",
                "ref": pull.repo.default_branch,
                "sha": self.parents.get(pull.commits[0].sha) if pull.commits else None,
                "user": self._owner(),
                "repo": short_repo,
            },
            "author_association": self._association(pull.user),
        }

    def _issue_json(self, item: Pull | GhIssue, api: str) -> dict:
        full = item.repo.full_name
        out = {
            "url": f"{api}/repos/{full}/issues/{item.number}",
            "repository_url": f"{api}/repos/{full}",
            "html_url": item.html_url,
            "id": item.issue_id if isinstance(item, Pull) else item.id,
            "number": item.number,
            "title": item.title,
            "user": self._user(item.user),
            "labels": self._labels(item.labels),
            "state": item.state,
            "locked": False,
            "assignee": None,
            "assignees": [],
            "comments": getattr(item, "comments", 0),
            "created_at": iso(item.created_at),
            "updated_at": iso(item.updated_at),
            "closed_at": iso(item.closed_at),
            "author_association": self._association(item.user),
            "body": item.body,
        }
        out["node_id"] = _node("I", out["id"])
        if isinstance(item, Pull):
            out["draft"] = item.draft
            out["state_reason"] = None
            out["pull_request"] = {
                "url": f"{api}/repos/{full}/pulls/{item.number}",
                "html_url": item.html_url,
                "diff_url": f"{item.html_url}.diff",
                "patch_url": f"{item.html_url}.patch",
                "merged_at": iso(item.merged_at),
            }
        else:
            out["state_reason"] = item.state_reason
        return out

    def _review_json(self, review: Review, api: str) -> dict:
        pull = review.pull
        return {
            "id": review.id,
            "node_id": _node("PRR", review.id),
            "user": self._user(review.user),
            "body": review.body,
            "state": review.state,
            "html_url": f"{pull.html_url}#pullrequestreview-{review.id}",
            "pull_request_url": f"{api}/repos/{pull.repo.full_name}/pulls/{pull.number}",
            "submitted_at": iso(review.submitted_at),
            "commit_id": review.commit_id,
            "author_association": self._association(review.user),
        }

    def _commit_json(self, commit: Commit, api: str) -> dict:
        full, date = commit.repo.full_name, iso(commit.date)
        squash = commit.on_default_branch and commit.pull is not None
        person = {"name": commit.author_name, "email": commit.author_email, "date": date}
        committer = {"name": "GitHub", "email": "noreply@github.com", "date": date} if squash else person
        return {
            "sha": commit.sha,
            "node_id": _node("C", commit.sha),
            "commit": {
                "author": person,
                "committer": committer,
                "message": commit.message,
                "tree": {"sha": fake_sha(commit.sha)},
                "comment_count": 0,
                "url": f"{api}/repos/{full}/git/commits/{commit.sha}",
            },
            "url": f"{api}/repos/{full}/commits/{commit.sha}",
            "html_url": f"https://github.com/{full}/commit/{commit.sha}",
            "author": self._user(commit.author),
            "committer": _WEB_FLOW if squash else self._user(commit.author),
            "parents": [{"sha": self.parents[commit.sha]}],
        }


    def _pull_ref(self, pull: Pull, api: str) -> dict:
        """A pull request as the Actions and Checks APIs list it."""
        full = pull.repo.full_name
        repo = {"id": pull.repo.id, "url": f"{api}/repos/{full}", "name": pull.repo.name}
        return {
            "url": f"{api}/repos/{full}/pulls/{pull.number}",
            "id": pull.id,
            "number": pull.number,
            "head": {"ref": pull.head_ref, "sha": pull.head_sha, "repo": repo},
            "base": {"ref": pull.repo.default_branch, "sha": self.parents.get(pull.commits[0].sha) if pull.commits
                     else None, "repo": repo},
        }

    def _run_json(self, run: WorkflowRun, api: str, with_pulls: bool = True) -> dict:
        full, commit = run.repo.full_name, run.commit
        url = f"{api}/repos/{full}/actions/runs/{run.id}"
        workflow_id = _fake_int(f"{full}/{_WORKFLOW[1]}", 8)
        suite = _fake_int(f"suite/{run.id}/{run.run_attempt}", 11)
        short_repo = {"id": run.repo.id, "node_id": _node("R", run.repo.id), "name": run.repo.name,
                      "full_name": full, "private": True, "owner": self._owner(),
                      "html_url": f"https://github.com/{full}", "url": f"{api}/repos/{full}"}
        return {
            "id": run.id,
            "name": _WORKFLOW[0],
            "node_id": _node("WFR", run.id),
            "head_branch": run.head_branch,
            "head_sha": commit.sha,
            "path": _WORKFLOW[1],
            "display_title": run.pull.title if run.pull else commit.message.splitlines()[0],
            "run_number": run.run_number,
            "event": run.event,
            "status": run.status,
            "conclusion": run.conclusion,
            "workflow_id": workflow_id,
            "check_suite_id": suite,
            "check_suite_node_id": _node("CS", suite),
            "url": url,
            "html_url": f"https://github.com/{full}/actions/runs/{run.id}",
            "pull_requests": [self._pull_ref(run.pull, api)] if run.pull and with_pulls else [],
            "created_at": iso(run.created_at),
            "updated_at": iso(run.updated_at),
            "actor": self._user(run.actor),
            "run_attempt": run.run_attempt,
            "referenced_workflows": [],
            "run_started_at": iso(run.run_started_at),
            "triggering_actor": self._user(run.actor),
            "jobs_url": f"{url}/jobs",
            "logs_url": f"{url}/logs",
            "check_suite_url": f"{api}/repos/{full}/check-suites/{suite}",
            "artifacts_url": f"{url}/artifacts",
            "cancel_url": f"{url}/cancel",
            "rerun_url": f"{url}/rerun",
            "previous_attempt_url": f"{url}/attempts/{run.run_attempt - 1}" if run.run_attempt > 1 else None,
            "workflow_url": f"{api}/repos/{full}/actions/workflows/{workflow_id}",
            "head_commit": {
                "id": commit.sha,
                "tree_id": fake_sha(commit.sha),
                "message": commit.message,
                "timestamp": iso(commit.date),
                "author": {"name": commit.author_name, "email": commit.author_email},
                "committer": {"name": commit.author_name, "email": commit.author_email},
            },
            "repository": short_repo,
            "head_repository": short_repo,
        }

    def _check_json(self, check: CheckRun, api: str) -> dict:
        run = check.run
        full = run.repo.full_name
        html = f"https://github.com/{full}/actions/runs/{run.id}/job/{check.id}"
        failed = check.conclusion == "failure"
        return {
            "id": check.id,
            "name": check.name,
            "node_id": _node("CR", check.id),
            "head_sha": run.commit.sha,
            "external_id": hashlib.md5(f"{run.id}/{check.name}/{check.attempt}".encode()).hexdigest(),
            "url": f"{api}/repos/{full}/check-runs/{check.id}",
            "html_url": html,
            "details_url": html,
            "status": check.status,
            "conclusion": check.conclusion,
            "started_at": iso(check.started_at),
            "completed_at": iso(check.completed_at),
            "output": {
                "title": None if check.completed_at is None else "Process completed with exit code 1." if failed
                else None,
                "summary": None,
                "text": None,
                "annotations_count": 1 if failed else 0,
                "annotations_url": f"{api}/repos/{full}/check-runs/{check.id}/annotations",
            },
            "check_suite": {"id": _fake_int(f"suite/{run.id}/{check.attempt}", 11)},
            "app": _ACTIONS_APP,
            "pull_requests": [self._pull_ref(run.pull, api)] if run.pull else [],
        }
