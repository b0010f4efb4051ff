"""The Python API: everything the CLI does, without the CLI. The CLI only parses, calls these,
renders and sets the exit code.

    stack = load_stack("stacks/hello.yaml", cli_vars=["seed=3"])
    the_plan = make_plan(stack, options=PlanOptions(force_fresh=True))
    print(render_text(the_plan))
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
import secrets as _secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from dataclasses import replace as _replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from reconciler.diagnostics import (
    Diagnostic,
    PlanError,
    RunpodDeployError,
    SpecError,
    error,
    warning,
)
from reconciler.identity import instance_state_path, stack_instance
from reconciler.load import SourceMap, load_spec_report, parse_var_assignment, parse_vars_file
from reconciler.naming import default_state_path, pod_name, stack_pod_prefix
from reconciler.observed import Observation
from reconciler.plan import PlacementOptions, Plan, PlanOptions
from reconciler.planner import plan as _plan
from reconciler.redaction import Redactor
from reconciler.spec import JobSpec, json_schema
from reconciler.state import StackIdentity, StackState
from reconciler.template import (
    RenderedJob,
    project_root_of,
    render_spec,
    render_text,
    resolve_variables,
)
from runtime.clock import Clock, SystemClock

if TYPE_CHECKING:  # the executor pulls in SSH and rsync; import it only where it runs
    from runtime.executor import ApplyResult
    from runtime.reporter import Reporter
    from runtime.statestore import StateStore

# No `__all__` here: the public names are listed once, in `runpod_deploy/__init__.py`.


@dataclass(frozen=True)
class Stack:
    """A loaded, rendered stack and where its state lives."""

    config_path: Path
    spec: JobSpec
    """As written (templates unrendered)."""
    job: RenderedJob
    identity: StackIdentity
    state_path: Path
    warnings: tuple[Diagnostic, ...]
    source_map: SourceMap
    source_fingerprint: str = ""
    """sha256 of the bytes the stack was rendered from (stack file, then vars file)."""
    backend: str | None = None
    """The state backend URL (`--backend`, then `RUNPOD_DEPLOY_BACKEND`, then `backend:`);
    None: the local state file."""

    @property
    def name(self) -> str:
        return self.job.spec.name

    @property
    def pod_prefix(self) -> str:
        return stack_pod_prefix(self.job.spec.effective_run_id_prefix, self.identity.key)


def run_stamp(clock: Clock) -> str:
    """The UTC `YYYYMMDDTHHMMSSZ` stamp of a run (run_id suffix and run dir name)."""
    return clock.now().strftime("%Y%m%dT%H%M%SZ")


def new_nonce() -> str:
    """A fresh per-attempt suffix for a pod name."""
    return _secrets.token_hex(3)


MAX_INPUT_BYTES = 1 << 20
"""A stack or vars file larger than this (1 MiB) is refused before it is parsed: real stacks
are a few KB, and PyYAML takes seconds per megabyte."""

MAX_YAML_NODES = 20_000
"""Nodes a stack may expand to once aliases are followed (a "billion laughs" file is tiny on
disk and huge in memory)."""


def _read_input(path: Path, field_path: str, what: str, expected: str) -> str:
    """The text of a user-supplied file, or a SpecError saying why it cannot be used."""
    try:
        size = path.stat().st_size
        if size > MAX_INPUT_BYTES:
            raise SpecError([error(f"{what} is {size:,} bytes, over the {MAX_INPUT_BYTES:,}-byte limit",
                                   detail=expected, field_path=field_path)])
        data = path.read_bytes()
    except OSError as exc:
        raise SpecError([error(f"cannot read {what}: {exc.strerror or exc}", detail=expected,
                               field_path=field_path)]) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise SpecError([error(f"{what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                               f"{exc.start})", detail=expected, field_path=field_path)]) from None


def _refuse_alias_bombs(text: str, source: str) -> None:
    """Count the nodes the YAML would expand to, following aliases, and stop at the limit.

    `yaml.compose` shares an aliased node instead of copying it, so this walk is cheap even for
    a hostile file; what is expensive is building and locating the expanded values. (This guard
    belongs in `reconciler.load`; it lives here until that module takes it over.)"""
    import yaml

    if "*" not in text:
        return
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return  # the loader reports syntax errors with their position
    budget = [MAX_YAML_NODES]

    def walk(node: Any) -> None:
        budget[0] -= 1
        if budget[0] < 0:
            raise SpecError([error(f"the YAML expands to more than {MAX_YAML_NODES:,} values through "
                                   "aliases (*name)", detail="expected a stack without alias bombs",
                                   field_path=source)])
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                walk(key)
                walk(value)
        elif isinstance(node, yaml.SequenceNode):
            for item in node.value:
                walk(item)

    if root is not None:
        walk(root)


def _locate(exc: SpecError | PlanError, smap: SourceMap) -> SpecError | PlanError:
    diags = [d.with_location(smap.locate_dotted(d.field_path)) if d.field_path and
             not d.field_path.startswith("--") else d for d in exc.diagnostics]
    return type(exc)(diags)


def load_stack(config: str | os.PathLike[str], *, cli_vars: Iterable[str] | Mapping[str, str] = (),
               vars_file: str | os.PathLike[str] | None = None,
               env: Mapping[str, str] | None = None, clock: Clock | None = None,
               stamp: str | None = None,
               run_dir: str | Callable[[Path], Path] | None = None,
               backend: str | None = None) -> Stack:
    """Read, validate and render a stack file. Raises SpecError with every problem located.

    `run_dir` may be a function of the project root that reserves the run dir (apply): the
    stack is then rendered once, with the run dir and run id the run will really have.
    `backend`: a state backend URL (`""`: the local state file); without it
    `RUNPOD_DEPLOY_BACKEND`, then the stack's `backend:` key. With a backend the stack is
    identified by its file's path inside its git repository, so every checkout of the
    repository finds the same state."""
    env = os.environ if env is None else env
    home = env.get("HOME") or str(Path.home())
    path = Path(config).expanduser().absolute()
    text = _read_input(path, str(config), "the stack file", "expected a readable YAML file")
    digest = hashlib.sha256(text.encode("utf-8"))
    _refuse_alias_bombs(text, str(config))
    loaded = load_spec_report(text, source=str(config))
    variables: dict[str, str] = {}
    if isinstance(cli_vars, Mapping):
        variables.update(cli_vars)
    else:
        for item in cli_vars:
            key, value = parse_var_assignment(item)
            variables[key] = value
    file_vars: dict[str, str] = {}
    if vars_file is not None:
        vpath = Path(vars_file)
        vars_text = _read_input(vpath, "--vars-file", "the vars file", "expected a JSON object of strings")
        digest.update(b"\0" + vars_text.encode("utf-8"))
        file_vars = parse_vars_file(vars_text, source=str(vars_file))
    spec = loaded.spec
    if callable(run_dir):
        root = project_root_of(spec, config_dir=str(path.parent), home=home)
        reserved = run_dir(Path(root))
        run_dir, stamp = str(reserved), reserved.name
    try:
        values = resolve_variables(spec, config_dir=str(path.parent), home=home,
                                   run_stamp=stamp or run_stamp(clock or SystemClock()),
                                   run_dir=run_dir, vars_file=file_vars, cli_vars=variables)
        job = render_spec(spec, values)
    except SpecError as exc:
        raise _locate(exc, loaded.source_map) from None
    name = job.spec.name
    if backend is None:  # "" means "the local state file", whatever else is set
        backend = env.get("RUNPOD_DEPLOY_BACKEND") or spec.backend
    backend = backend or None
    identity_path = _shared_identity_path(path) if backend else str(path)
    instance = stack_instance(name, identity_path, {**file_vars, **variables},
                              secret_names=job.variables.secret_names)
    identity = StackIdentity(name=name, config_hash=instance.config_hash, key=instance.key,
                             variables=dict(instance.variables) or None)
    if spec.state_file:
        raw = spec.state_file
        if "{" in raw:  # `state_file: ~/.runpod-{seed}.json`: one file per value
            try:
                raw = render_text(raw, job.variables.values, field_path="state_file")
            except SpecError as exc:
                raise _locate(exc, loaded.source_map) from None
        raw = home + raw[1:] if raw == "~" or raw.startswith("~/") else raw
        state_path = Path(posixpath.normpath(posixpath.join(str(path.parent), raw)))
    else:
        state_path = Path(instance_state_path(
            default_state_path(name, identity_path, home=home,
                               state_dir=env.get("RUNPOD_DEPLOY_STATE_DIR")), instance))
    unused = _unused_variables(spec, {**file_vars, **variables})
    return Stack(config_path=path, spec=spec, job=job, identity=identity, state_path=state_path,
                 warnings=loaded.warnings + unused, source_map=loaded.source_map,
                 source_fingerprint="sha256:" + digest.hexdigest(), backend=backend)


def source_fingerprint(config: str | os.PathLike[str],
                       vars_file: str | os.PathLike[str] | None = None) -> str:
    """The fingerprint `load_stack` gives the same files now ("" when they cannot be read)."""
    try:
        digest = hashlib.sha256(Path(config).expanduser().absolute().read_bytes())
        if vars_file is not None:
            digest.update(b"\0" + Path(vars_file).read_bytes())
    except OSError:
        return ""
    return "sha256:" + digest.hexdigest()


def _shared_identity_path(path: Path) -> str:
    """The stack file's path as every checkout of its repository spells it (`git:` + the path
    from the repository root); the absolute path outside a repository."""
    for parent in path.parents:
        if (parent / ".git").exists():
            return "git:" + path.relative_to(parent).as_posix()
    return str(path)


def open_stack_store(stack: Stack, env: Mapping[str, str] | None = None) -> StateStore:
    """The `StateStore` of a stack, on its backend (`runtime.statestore.open_store`)."""
    from runtime.statestore import open_store

    env = os.environ if env is None else env
    return open_store(stack.state_path, stack.identity, stack.backend, home=env.get("HOME"))


def _unused_variables(spec: JobSpec, given: Mapping[str, str]) -> tuple[Diagnostic, ...]:
    """A `--var` (or vars-file key) that nothing in the stack refers to is usually a typo of
    one that is used: say so, with the nearest name, rather than run with the default."""
    import difflib

    from reconciler.template import referenced_names

    if not given:
        return ()
    used = referenced_names(spec)
    known = sorted(used | set(spec.variables))
    found: list[Diagnostic] = []
    for name in given:
        if name in used:
            continue
        near = difflib.get_close_matches(name, known, n=1)
        found.append(warning(f"variable '{name}' is set but nothing in the stack uses it",
                             detail=f"did you mean '{near[0]}'?" if near else "",
                             field_path=f"--var {name}"))
    return tuple(found)


def observe_stack(stack: Stack, state: StackState, *, provider: str = "runpodctl",
                  env: Mapping[str, str] | None = None,
                  clock: Clock | None = None) -> Observation:
    """Ask the provider about the stack's pods (or say it could not)."""
    from runtime.observe import observe
    from runtime.providers import make_provider

    env = os.environ if env is None else env
    the_provider = make_provider(provider, env)
    return observe(the_provider, state, prefix=stack.pod_prefix, clock=clock or SystemClock(),
                   cloud_type=stack.job.spec.pod.cloud_type,
                   with_network_volumes=stack.job.spec.uses_network_volume,
                   missing_note=f"{provider} was not found on PATH")


def make_plan(stack: Stack, *, options: PlanOptions = PlanOptions(),
              provider: str = "runpodctl", env: Mapping[str, str] | None = None,
              clock: Clock | None = None, state: StackState | None = None,
              observation: Observation | None = None) -> Plan:
    """Read the state, observe, plan. Pass `state`/`observation` to plan against given values."""
    store = open_stack_store(stack, env)
    if state is None:
        state = store.read()
    elif state.identity is None:
        state = state.evolve(identity=stack.identity)
    if observation is None:
        observation = observe_stack(stack, state, provider=provider, env=env, clock=clock)
    try:
        return _plan(stack.job, state, observation, options, config_path=str(stack.config_path),
                     state_path=store.location, source_fingerprint=stack.source_fingerprint)
    except PlanError as exc:
        raise stack.job.redactor.exception(_locate(exc, stack.source_map)) from None


def read_plan(text: str) -> Plan:
    """A plan saved with `plan --out`."""
    return Plan.from_json(text)


def stack_schema() -> dict[str, Any]:
    """The JSON Schema of the stack format."""
    return json_schema()


def next_pod_name(stack: Stack, nonce: str | None = None) -> str:
    """The name for one create attempt of this stack."""
    return pod_name(stack.pod_prefix, nonce or new_nonce())


def with_budget(stack: Stack, *, cost_cap_usd: float | None = None,
                max_runtime_minutes: int | None = None) -> Stack:
    """The stack with `--cost-cap-usd` / `--max-runtime-minutes` applied, so that the plan (its
    cost line and guards) and the apply both see them."""
    changes: dict[str, Any] = {}
    if cost_cap_usd is not None:
        if cost_cap_usd <= 0:
            raise SpecError([error("--cost-cap-usd must be > 0", field_path="--cost-cap-usd")])
        changes["cost_cap_usd"] = cost_cap_usd
    if max_runtime_minutes is not None:
        if max_runtime_minutes <= 0:
            raise SpecError([error("--max-runtime-minutes must be > 0",
                                   field_path="--max-runtime-minutes")])
        changes["max_runtime_minutes"] = max_runtime_minutes
    if not changes:
        return stack
    from dataclasses import replace

    spec = stack.job.spec
    job_spec = spec.model_copy(update={"budget": spec.budget.model_copy(update=changes)})
    return replace(stack, job=replace(stack.job, spec=job_spec))


@dataclass(frozen=True)
class ApplyRequest:
    """Everything `apply` needs besides the stack file: the CLI's flags as values."""

    cli_vars: tuple[str, ...] = ()
    vars_file: str | None = None
    plan_options: PlanOptions = PlanOptions()
    provider: str = "runpodctl"
    cost_cap_usd: float | None = None
    max_runtime_minutes: int | None = None
    gpu_id: str | None = None
    datacenter_id: str | None = None
    max_gpu_price: float | None = None
    ssh_ready_timeout_sec: int | None = None
    saved_plan: Plan | None = None
    ssh_key: str | None = None
    """A private key to use instead of the stack's `ssh.key_path`."""
    fallback_cloud_type: str | None = None
    """`SECURE` or `COMMUNITY`: after a stock-out everywhere on the stack's cloud type, try the
    same GPUs and datacenters on this one (the original's `--fallback-cloud-type`)."""
    backend: str | None = None
    """The state backend URL (`--backend`); None: `RUNPOD_DEPLOY_BACKEND`, then the stack's."""
    detach: bool = False
    """`apply --detach`: return once the job runs (the pod's watchdog and self-stop guard it);
    `attach_stack` finishes the run."""
    attach_only: bool = False
    """`attach`: finish the run the state records, or fail; never launch or create anything."""


class NothingToAttachError(RunpodDeployError):
    """`attach` found no unfinished run of the stack on a pod it can reach."""

    exit_code = 1


def _check_private_key(stack: Stack, override: str | None) -> None:
    """Every run logs in with the private key, and OpenSSH (under rsync) ignores one that
    others can read: find out now, before a pod bills, not when the pulls fail after the job."""
    import stat

    field = "--ssh-key" if override else "ssh.key_path"
    path = Path(os.path.expanduser(override or stack.job.spec.ssh.key_path))
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        problem, detail = (f"private key {path} cannot be read: {exc.strerror}",
                           "expected the private key whose public half RunPod puts on your pods")
    else:
        if not stat.S_ISREG(mode):
            problem, detail = f"private key {path} is not a file", "expected a private key file"
        elif mode & 0o077:
            problem = f"private key {path} is readable by others (mode {oct(mode & 0o777)})"
            detail = ("OpenSSH ignores such a key, so staging and pulls would fail after the pod "
                      f"is billed; run: chmod 600 {path}")
        else:
            return
    failure = SpecError([error(problem, detail=detail, field_path=field)])
    raise _locate(failure, stack.source_map) if not override else failure


def _check_pin(request: ApplyRequest, the_plan: Plan) -> None:
    """A pin the placement cannot honour (a datacenter other than the network volume's, which
    could never mount it): refuse before a pod exists. The rule is `reconciler.placement`'s."""
    placement = the_plan.placement
    if request.datacenter_id is None or placement is None or placement.error is None:
        return
    volume = the_plan.network_volume
    raise SpecError([error(
        placement.error,
        detail=f"expected --datacenter-id {volume.datacenter_id} (or no pin)"
        if volume is not None and volume.datacenter_id else "expected another pin (or none)",
        field_path="--datacenter-id")])


def run_redactor(stack: Stack, env: Mapping[str, str]) -> Redactor:
    """Every secret a run of `stack` knows: its secret variables, the values of the environment
    variables `secrets[].env` ships to the pod, and the provider's API key."""
    shipped = [env.get(key) for secret in stack.job.spec.secrets for key in secret.env]
    return stack.job.redactor.with_values([*shipped, env.get("RUNPOD_API_KEY")])


def _release_run_dir(path: Path | None, keep: Path | None) -> None:
    """Remove a reserved run dir that nothing ran in (and the folders made for it, up to
    `keep`), so that a declined or refused apply leaves nothing behind."""
    while path is not None and path != keep:
        try:
            path.rmdir()
        except OSError:
            return
        path = path.parent


def apply_stack(config: str | os.PathLike[str], request: ApplyRequest = ApplyRequest(), *,
                env: Mapping[str, str] | None = None, clock: Clock | None = None,
                reporter: Reporter | None = None,
                confirm: Callable[[Plan], bool] | None = None,
                on_plan: Callable[[Plan], None] | None = None,
                on_run_dir: Callable[[Path], None] | None = None) -> ApplyResult | None:
    """Reserve a run dir and render the stack once; lock it, observe, plan (a saved plan must
    still match), ask `confirm(plan)` (None: go ahead), check that the stack file is still the
    one the plan was made from, then carry out that plan: provision, run the job, pull, apply
    the lifecycle.

    Returns the `ApplyResult` (its `exit_code` tells the outcomes apart), or None when
    `confirm` declined; raises `RunpodDeployError` for what stops it before the run starts
    (bad stack, locked stack, stale plan, changed stack file, provider unreachable), having
    removed the reserved run dir. `on_plan(plan)` sees the plan before the prompt. Every
    text that leaves (reporter lines, files, the error raised) passes the run's `Redactor`.
    """
    from runtime.errors import ProviderError, StalePlanError
    from runtime.executor import ApplyOptions, Executor, hostkeys_path_for
    from runtime.failpoints import crash_point
    from runtime.providers import make_provider
    from runtime.reporter import PlainReporter, RedactingReporter
    from runtime.rundir import EventLog, create_run_dir

    env = os.environ if env is None else env
    clock = clock or SystemClock()
    if (request.gpu_id is None) != (request.datacenter_id is None):
        raise SpecError([error("--gpu-id and --datacenter-id must be given together",
                               field_path="--gpu-id")])
    reserved: dict[str, Path] = {}

    def reserve(project_root: Path) -> Path:
        # The first folder that does not exist yet is the one to remove again on a refusal.
        made = next((p for p in (project_root / "artifacts" / "runpod", project_root / "artifacts",
                                 project_root) if p.exists()), None)
        if made is not None:
            reserved["keep"] = made
        reserved["run_dir"] = create_run_dir(project_root, now=clock.now).path
        return reserved["run_dir"]

    try:
        stack = with_budget(load_stack(config, cli_vars=request.cli_vars,
                                       vars_file=request.vars_file, env=env, clock=clock,
                                       run_dir=reserve, backend=request.backend),
                            cost_cap_usd=request.cost_cap_usd,
                            max_runtime_minutes=request.max_runtime_minutes)
    except BaseException:
        _release_run_dir(reserved.get("run_dir"), reserved.get("keep"))
        raise
    run_dir = reserved["run_dir"]
    redactor = run_redactor(stack, env)
    reporter = RedactingReporter(reporter or PlainReporter(), redactor)
    started = False
    try:
        for diagnostic in stack.warnings:
            reporter.warning(diagnostic.format().replace("warning: ", "", 1))
        provider = make_provider(request.provider, env)
        if provider is None:
            raise ProviderError(f"{request.provider} was not found on PATH; install it (or use "
                                "--provider api, or --local for the simulator)",
                                provider=request.provider)
        store = open_stack_store(stack, env)
        with store.lock(timeout=0, command=f"apply {stack.config_path}"):
            crash_point("after_lock")
            state = store.read()
            observation = observe_stack(stack, state, provider=request.provider, env=env,
                                        clock=clock)
            options = request.plan_options.model_copy(update={"placement": PlacementOptions(
                gpu_id=request.gpu_id, datacenter_id=request.datacenter_id,
                max_gpu_price=request.max_gpu_price,
                fallback_cloud_type=request.fallback_cloud_type)})
            the_plan = make_plan(stack, options=options, provider=request.provider, env=env,
                                 clock=clock, state=state, observation=observation)
            _check_pin(request, the_plan)
            _check_private_key(stack, request.ssh_key)  # after the plan: its errors come first
            if request.saved_plan is not None and \
                    request.saved_plan.inputs_fingerprint != the_plan.inputs_fingerprint:
                raise StalePlanError("the saved plan no longer matches the stack, its state or "
                                     "what RunPod reports; run `runpod-deploy plan` again")
            if request.attach_only:
                _check_attachable(the_plan, state)
            if on_plan is not None:
                on_plan(the_plan)
            if confirm is not None and not confirm(the_plan):
                return None
            if source_fingerprint(config, request.vars_file) != stack.source_fingerprint:
                raise StalePlanError(
                    f"{stack.config_path} (or its vars file) changed after the plan was shown; "
                    "nothing was done. Run apply again to see the plan of the file as it is now")
            if the_plan.attach is not None:
                # The earlier run goes on in its own run dir, rendered as it was ({run_dir},
                # {run_id} are that run's), with this apply's budget overrides.
                _release_run_dir(run_dir, reserved.get("keep"))
                run_dir = Path(the_plan.attach.run_dir)
                run_dir.mkdir(parents=True, exist_ok=True)
                stack = with_budget(load_stack(config, cli_vars=request.cli_vars,
                                               vars_file=request.vars_file, env=env, clock=clock,
                                               run_dir=lambda _root: run_dir),
                                    cost_cap_usd=request.cost_cap_usd,
                                    max_runtime_minutes=request.max_runtime_minutes)
            started = True
            if on_run_dir is not None:
                on_run_dir(run_dir)
            executor = Executor(
                spec=stack.job.spec,
                project_root=Path(stack.job.variables.project_root),
                config_path=stack.config_path,
                store=store,
                provider=provider,
                clock=clock,
                reporter=reporter,
                options=ApplyOptions(gpu_id=request.gpu_id, datacenter_id=request.datacenter_id,
                                     max_gpu_price=request.max_gpu_price,
                                     ssh_ready_timeout_sec=request.ssh_ready_timeout_sec,
                                     ssh_key=request.ssh_key),
                make_pod_name=lambda: next_pod_name(stack),
                hostkeys_path=hostkeys_path_for(store.path),
                env=env,
                redactor=redactor,
                catalog=observation.catalog,
            )
            with EventLog(run_dir / "events.jsonl", now=clock.now, redactor=redactor) as events:
                result = executor.apply(the_plan, state, run_dir=run_dir, events=events,
                                        detach=request.detach)
            _publish_run(store, stack.name, run_dir, reporter)
            return result
    except RunpodDeployError as exc:
        raise redactor.exception(exc) from None
    finally:
        if not started:
            _release_run_dir(run_dir, reserved.get("keep"))


def _publish_run(store: StateStore, stack_name: str, run_dir: Path, reporter: Reporter) -> None:
    """The run's manifest and events under the backend too (`runs/<stack>/<run_id>/`)."""
    from reconciler.diagnostics import RunpodDeployError
    from runtime.statestore import publish_run

    try:
        publish_run(store, stack_name, run_dir)
    except RunpodDeployError as exc:
        reporter.warning(f"could not copy the run's manifest and events to the backend: {exc}")


def _check_attachable(the_plan: Plan, state: StackState) -> None:
    """`attach` carries out only a plan that attaches: anything else needs `apply`."""
    if the_plan.attach is not None:
        return
    job = state.job
    if job is None:
        last = state.last_run
        done = f" (the last run, {last.run_id}, ended {last.outcome})" if last else ""
        raise NothingToAttachError(f"no unfinished run of this stack to attach to{done}; "
                                   "`runpod-deploy apply` starts one")
    raise NothingToAttachError(
        f"run {job.run_id} cannot be attached to: its pod {job.pod_id} is not there to resume "
        f"({'; '.join(r.title for s in the_plan.steps for r in s.reasons) or 'see `plan`'}); "
        "`runpod-deploy apply` runs the job again")


def attach_stack(config: str | os.PathLike[str], request: ApplyRequest = ApplyRequest(), *,
                 env: Mapping[str, str] | None = None, clock: Clock | None = None,
                 reporter: Reporter | None = None,
                 on_run_dir: Callable[[Path], None] | None = None) -> ApplyResult:
    """Finish the stack's unfinished run (the one an `apply --detach`, or a killed apply, left):
    resume its pod if it stopped itself, stream the rest of the log, wait for the job's end,
    pull into the run's original run dir, apply the lifecycle, write the one manifest.
    Raises `NothingToAttachError` when there is none; never launches or creates anything."""
    result = apply_stack(config, _replace(request, attach_only=True, detach=False),
                         env=env, clock=clock, reporter=reporter, on_run_dir=on_run_dir)
    assert result is not None  # no confirm callback: never declined
    return result


@dataclass(frozen=True)
class RunStatus:
    """What `runpod-deploy status` reports of a stack's unfinished run (`job` is None when
    there is none). Every text field has passed the run's redactor."""

    stack: str
    run_id: str | None = None
    run_dir: str | None = None
    pod_id: str | None = None
    pod_status: str | None = None
    """RunPod's status word for the pod (RUNNING, EXITED, ...), MISSING when it is gone."""
    job: str | None = None
    """`running`, `exited`, `unknown` (the pod could not be asked), or None: no run to report."""
    exit_code: int | None = None
    elapsed_sec: int | None = None
    hourly_usd: float | None = None
    spend_usd: float | None = None
    """Spend so far at the pod's real $/hr, since the launch (an estimate: the pod's own
    billing began a little earlier, with its boot)."""
    detached: bool = False
    last_lines: tuple[str, ...] = ()
    last_run: str | None = None
    """The last finished run's id and outcome, when no run is unfinished."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def stack_status(config: str | os.PathLike[str], *, cli_vars: Iterable[str] = (),
                 vars_file: str | None = None, provider: str = "runpodctl",
                 env: Mapping[str, str] | None = None, clock: Clock | None = None,
                 ssh_key: str | None = None, lines: int = 10,
                 backend: str | None = None) -> RunStatus:
    """The stack's unfinished run, read without the stack lock and without changing anything:
    its pod at the provider, the job over SSH (the pinned host key), elapsed time, spend."""
    from datetime import UTC, datetime

    from runtime.providers import make_provider

    env = os.environ if env is None else env
    clock = clock or SystemClock()
    stack = load_stack(config, cli_vars=cli_vars, vars_file=vars_file, env=env, clock=clock,
                       backend=backend)
    redactor = run_redactor(stack, env)
    store = open_stack_store(stack, env)
    store.pull_pins_on_read = True  # a shared state's host-key pins, for the SSH question
    state = store.read()
    job = state.job
    if job is None:
        last = f"{state.last_run.run_id} ({state.last_run.outcome})" if state.last_run else None
        return RunStatus(stack=stack.identity.label, last_run=last)
    launched = datetime.fromisoformat(job.launched_at)
    launched = launched if launched.tzinfo else launched.replace(tzinfo=UTC)
    now = clock.now()
    elapsed = max(0, int(((now if now.tzinfo else now.replace(tzinfo=UTC)) - launched).total_seconds()))
    pods = make_provider(provider, env)
    pod = pods.get_pod(job.pod_id) if pods is not None else None
    pod_status = pod.status.value if pod is not None else ("MISSING" if pods is not None else None)
    hourly = (pod.cost_per_hr if pod is not None and pod.cost_per_hr else None) or job.hourly_usd
    job_state, exit_code = "unknown", job.exit_code
    tail: tuple[str, ...] = ()
    if pod is not None and pod.ssh is not None and pod_status == "RUNNING":
        job_state, exit_code, tail = _ask_pod(stack, store.path, state, pod, job, ssh_key, clock,
                                              lines)
    elif job.exit_code is not None:
        job_state = "exited"
    return RunStatus(
        stack=stack.identity.label, run_id=job.run_id, run_dir=job.run_dir, pod_id=job.pod_id,
        pod_status=pod_status, job=job_state, exit_code=exit_code, elapsed_sec=elapsed,
        hourly_usd=hourly, spend_usd=round(hourly * elapsed / 3600, 4) if hourly else None,
        detached=job.detached, last_lines=tuple(redactor.text(line) for line in tail),
    )


def _ask_pod(stack: Stack, state_path: Path, state: StackState, pod: Any, job: Any,
             ssh_key: str | None,
             clock: Clock, lines: int) -> tuple[str, int | None, tuple[str, ...]]:
    """The job's state and the log's last lines, over SSH with the pod's pinned host key."""
    import shlex

    from runtime.executor import hostkeys_path_for
    from runtime.hostkeys import HostKeyPins
    from runtime.jobscripts import parse_status, status_command
    from runtime.ssh import SshSession

    pins = state.pod.host_key_pins if state.pod is not None and state.pod.pod_id == pod.pod_id else ()
    if not pins:
        return "unknown", job.exit_code, ()
    session = SshSession(pod.ssh, key_path=Path(os.path.expanduser(ssh_key or stack.job.spec.ssh.key_path)),
                         pins=HostKeyPins(hostkeys_path_for(state_path), clock=clock),
                         pin_id=pins[-1], allow_new_host_key=False, clock=clock)
    try:
        answer = session.run(status_command(control_dir=job.control_dir,
                                            durable_exit_code_path=job.durable_exit_code_path),
                             timeout_sec=30, check=False)
        job_state, code = parse_status(answer.stdout)
        tail = session.run(f"tail -n {int(lines)} {shlex.quote(job.log_path)} 2>/dev/null",
                           timeout_sec=30, check=False)
        return job_state, code, tuple((tail.stdout or "").splitlines())
    except RunpodDeployError:
        return "unknown", job.exit_code, ()
    finally:
        session.close()
