"""deploy/k8s as `kubectl apply -k` would send it, checked against Kubernetes' own OpenAPI
schemas (kubernetes-validate bundles them per release): no kubectl or cluster on a CI box, but a
misspelt field, a wrong type or a missing required key fails here, not at a customer's apply."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

K8S = Path(__file__).resolve().parent.parent / "deploy" / "k8s"
# The oldest release still in the schemas' set that operators run, and the newest bundled.
VERSIONS = ("1.29.0", kubernetes_validate.latest_version())


def _docs(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]


def _containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if "template" in spec else {}
    return [*pod.get("initContainers", []), *pod.get("containers", [])]


def render_kustomization(directory: Path) -> list[dict[str, Any]]:
    """The transformations deploy/k8s/kustomization.yaml uses (resources, labels without
    selectors, images), applied as kustomize applies them. Anything else in the file is refused,
    so a new kustomize feature there cannot go unchecked."""
    [kustomization] = _docs(directory / "kustomization.yaml")
    unknown = set(kustomization) - {"apiVersion", "kind", "resources", "labels", "images"}
    assert not unknown, f"render_kustomization does not apply {sorted(unknown)}: teach it, or validate otherwise"
    rendered: list[dict[str, Any]] = []
    for name in kustomization["resources"]:
        for doc in _docs(directory / name):
            doc = copy.deepcopy(doc)
            for label in kustomization.get("labels", []):
                assert not label.get("includeSelectors"), "selector labels are not rendered here"
                doc["metadata"].setdefault("labels", {}).update(label["pairs"])
            for image in kustomization.get("images", []):
                for container in _containers(doc):
                    if container["image"].split(":")[0] == image["name"]:
                        container["image"] = f"{image.get('newName', image['name'])}:{image['newTag']}"
            rendered.append(doc)
    return rendered


@pytest.mark.parametrize("version", VERSIONS)
def test_every_rendered_manifest_matches_the_kubernetes_schema(version: str) -> None:
    rendered = render_kustomization(K8S)
    assert {doc["kind"] for doc in rendered} >= {"Deployment", "Job", "Service", "Ingress", "ConfigMap",
                                                 "PodDisruptionBudget"}
    for doc in rendered:
        kubernetes_validate.validate(doc, version, strict=True)  # raises ValidationError, naming the field


def test_the_example_secret_matches_the_schema_too() -> None:
    for doc in _docs(K8S / "secret.example.yaml"):
        kubernetes_validate.validate(doc, VERSIONS[-1], strict=True)


def test_the_image_is_rewritten_in_every_container_and_init_container() -> None:
    images = {c["image"] for doc in render_kustomization(K8S) for c in _containers(doc)}
    assert images == {"registry.example.com/permit-worker:0.1.0"}


def test_the_schema_check_catches_a_misspelt_field_and_a_wrong_type() -> None:
    [scheduler] = [d for d in render_kustomization(K8S) if d["metadata"]["name"] == "permit-worker-scheduler"]
    misspelt = copy.deepcopy(scheduler)
    misspelt["spec"]["replica"] = misspelt["spec"].pop("replicas")
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(misspelt, VERSIONS[-1], strict=True)
    wrong_type = copy.deepcopy(scheduler)
    wrong_type["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "sixty"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, VERSIONS[-1], strict=True)
