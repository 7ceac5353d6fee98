"""Pod volumes: unique DNS-label names, exactly one source per volume, and each source's own fields.

The sources are checked in Kubernetes' order so that "may not specify more than 1 volume type" lands on
the same field as in Kubernetes (including its historical path spellings ``downwarAPI``, ``cephFS`` and
``persistentDisk``). Sources kubelite never mounts (cloud disks, iSCSI ...) are still recognised and
get their required-field checks, so that manifests written for a real cluster validate identically.
"""

from __future__ import annotations

import posixpath
from typing import Any

from kubelite.api.errors import duplicate, forbidden, invalid, not_supported, required, too_long

from . import formats
from .common import Errs, as_dict, as_list, as_str, dns_label, each_invalid, is_int, label_name, labels
from .resources import parse

FILE_MODE_ERROR = "must be a number between 0 and 0777 (octal), both inclusive"
HOST_PATH_TYPES = ["", "BlockDevice", "CharDevice", "Directory", "DirectoryOrCreate", "File", "FileOrCreate",
                   "Socket"]
VOLUME_FIELD_PATHS = ["metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace",
                      "metadata.uid"]

# Volume source field -> path spelling used in the "more than 1 volume type" error, in checking order.
_SOURCES: tuple[tuple[str, str], ...] = (
    ("emptyDir", "emptyDir"), ("hostPath", "hostPath"), ("gitRepo", "gitRepo"),
    ("gcePersistentDisk", "gcePersistentDisk"), ("awsElasticBlockStore", "awsElasticBlockStore"),
    ("secret", "secret"), ("nfs", "nfs"), ("iscsi", "iscsi"), ("glusterfs", "glusterfs"),
    ("flocker", "flocker"), ("persistentVolumeClaim", "persistentVolumeClaim"), ("rbd", "rbd"),
    ("cinder", "cinder"), ("cephfs", "cephFS"), ("quobyte", "quobyte"), ("downwardAPI", "downwarAPI"),
    ("fc", "fc"), ("flexVolume", "flexVolume"), ("configMap", "configMap"), ("azureFile", "azureFile"),
    ("vsphereVolume", "vsphereVolume"), ("photonPersistentDisk", "photonPersistentDisk"),
    ("portworxVolume", "portworxVolume"), ("azureDisk", "azureDisk"), ("storageos", "storageos"),
    ("projected", "projected"), ("scaleIO", "scaleIO"), ("csi", "csi"), ("ephemeral", "ephemeral"),
    ("image", "image"),
)

# Sources whose validation is only "these fields are required": source -> (path child, fields).
_REQUIRED_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "gitRepo": ("gitRepo", ("repository",)),
    "gcePersistentDisk": ("persistentDisk", ("pdName",)),
    "awsElasticBlockStore": ("awsElasticBlockStore", ("volumeID",)),
    "iscsi": ("iscsi", ("targetPortal", "iqn")),
    "glusterfs": ("glusterfs", ("endpoints", "path")),
    "rbd": ("rbd", ("monitors", "image")),
    "cinder": ("cinder", ("volumeID",)),
    "cephfs": ("cephfs", ("monitors",)),
    "quobyte": ("quobyte", ("registry", "volume")),
    "flexVolume": ("flexVolume", ("driver",)),
    "azureFile": ("azureFile", ("secretName", "shareName")),
    "vsphereVolume": ("vsphereVolume", ("volumePath",)),
    "photonPersistentDisk": ("photonPersistentDisk", ("pdID",)),
    "portworxVolume": ("portworxVolume", ("volumeID",)),
    "azureDisk": ("azureDisk", ("diskName", "diskURI")),
    "storageos": ("storageos", ("volumeName",)),
    "scaleIO": ("scaleIO", ("gateway", "system", "volumeName")),
}


def volumes(errs: Errs, path: str, value: Any) -> dict[str, dict[str, Any]]:
    """Validate ``spec.volumes``; return the valid volumes by name (mounts may only refer to those)."""
    valid: dict[str, dict[str, Any]] = {}
    for i, vol in enumerate(as_dict(v) for v in as_list(value)):
        at, name = f"{path}[{i}]", as_str(vol.get("name"))
        own: Errs = []
        volume_source(own, at, vol)
        if not name:
            own.append(required(f"{at}.name"))
        else:
            dns_label(own, f"{at}.name", name)
        if name in valid:
            own.append(duplicate(f"{at}.name", name))
        if own:
            errs.extend(own)
        else:
            valid[name] = vol
    return valid


def volume_source(errs: Errs, path: str, vol: dict[str, Any]) -> None:
    count = 0
    for key, spelled in _SOURCES:
        if vol.get(key) is None:
            continue
        if count:
            errs.append(forbidden(f"{path}.{spelled}", "may not specify more than 1 volume type"))
            continue
        count += 1
        _check_source(errs, path, key, vol.get(key))
    if not count:
        errs.append(required(path, "must specify a volume type"))


def _check_source(errs: Errs, path: str, key: str, value: Any) -> None:
    source = as_dict(value)
    at = f"{path}.{key}"
    if key in _REQUIRED_FIELDS:
        child, fields = _REQUIRED_FIELDS[key]
        for field in fields:
            if not source.get(field):
                errs.append(required(f"{path}.{child}.{field}"))
        return
    checker = _CHECKERS.get(key)
    if checker is not None:
        checker(errs, at, source)


def _empty_dir(errs: Errs, path: str, source: dict[str, Any]) -> None:
    if source.get("sizeLimit") is not None:
        q = parse(errs, f"{path}.sizeLimit", source["sizeLimit"])
        if q is not None and q.value < 0:
            errs.append(forbidden(f"{path}.sizeLimit", "SizeLimit field must be a valid resource quantity"))


def _host_path(errs: Errs, path: str, source: dict[str, Any]) -> None:
    host_path = as_str(source.get("path"))
    if not host_path:
        errs.append(required(f"{path}.path"))
        return
    no_backsteps(errs, f"{path}.path", host_path)
    kind = source.get("type")
    if kind is not None and kind not in HOST_PATH_TYPES:
        errs.append(not_supported(f"{path}.type", kind, HOST_PATH_TYPES))


def _secret(errs: Errs, path: str, source: dict[str, Any]) -> None:
    if not as_str(source.get("secretName")):
        errs.append(required(f"{path}.secretName"))
    file_mode(errs, f"{path}.defaultMode", source.get("defaultMode"))
    for i, item in enumerate(as_list(source.get("items"))):
        key_to_path(errs, f"{path}.items[{i}]", item)


def _config_map(errs: Errs, path: str, source: dict[str, Any]) -> None:
    if not as_str(source.get("name")):
        errs.append(required(f"{path}.name"))
    file_mode(errs, f"{path}.defaultMode", source.get("defaultMode"))
    for i, item in enumerate(as_list(source.get("items"))):
        key_to_path(errs, f"{path}.items[{i}]", item)


def _pvc(errs: Errs, path: str, source: dict[str, Any]) -> None:
    if not as_str(source.get("claimName")):
        errs.append(required(f"{path}.claimName"))


def _nfs(errs: Errs, path: str, source: dict[str, Any]) -> None:
    nfs_path = as_str(source.get("path"))
    if not as_str(source.get("server")):
        errs.append(required(f"{path}.server"))
    if not nfs_path:
        errs.append(required(f"{path}.path"))
    if not nfs_path.startswith("/"):
        errs.append(invalid(f"{path}.path", nfs_path, "must be an absolute path"))


def _downward_api(errs: Errs, path: str, source: dict[str, Any]) -> None:
    file_mode(errs, f"{path}.defaultMode", source.get("defaultMode"))
    for item in as_list(source.get("items")):
        # Kubernetes reports item errors on the source's path, not the item's index.
        downward_api_file(errs, path, as_dict(item))


def downward_api_file(errs: Errs, path: str, item: dict[str, Any]) -> None:
    file_path = as_str(item.get("path"))
    if not file_path:
        errs.append(required(f"{path}.path"))
    local_non_reserved_path(errs, f"{path}.path", file_path)
    if item.get("fieldRef") is not None:
        object_field_selector(errs, f"{path}.fieldRef", item.get("fieldRef"), VOLUME_FIELD_PATHS)
        if item.get("resourceFieldRef") is not None:
            errs.append(invalid(path, "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
    elif item.get("resourceFieldRef") is not None:
        # Imported lazily: containers.py imports this module.
        from .containers import resource_field_selector

        resource_field_selector(errs, f"{path}.resourceFieldRef", item.get("resourceFieldRef"), volume=True)
    else:
        errs.append(required(path, "one of fieldRef and resourceFieldRef is required"))
    file_mode(errs, f"{path}.mode", item.get("mode"))


def _projected(errs: Errs, path: str, source: dict[str, Any]) -> None:
    file_mode(errs, f"{path}.defaultMode", source.get("defaultMode"))
    seen: set[str] = set()

    def claim(file_path: str, shown: str) -> None:
        if file_path in seen:
            errs.append(invalid(path, shown, "conflicting duplicate paths"))
        seen.add(file_path)

    for i, src in enumerate(as_dict(s) for s in as_list(source.get("sources"))):
        at, count = f"{path}.sources[{i}]", 0
        for kind in ("secret", "configMap"):
            proj = src.get(kind)
            if proj is None:
                continue
            count += 1
            proj = as_dict(proj)
            if not as_str(proj.get("name")):
                errs.append(required(f"{at}.{kind}.name"))
            for j, item in enumerate(as_list(proj.get("items"))):
                key_to_path(errs, f"{at}.{kind}.items[{j}]", item)
                if as_str(as_dict(item).get("path")):
                    claim(as_str(as_dict(item).get("path")), as_str(proj.get("name")))
        if src.get("downwardAPI") is not None:
            count += 1
            for item in (as_dict(x) for x in as_list(as_dict(src.get("downwardAPI")).get("items"))):
                downward_api_file(errs, f"{at}.downwardAPI", item)
                if as_str(item.get("path")):
                    claim(as_str(item.get("path")), as_str(item.get("path")))
        if src.get("serviceAccountToken") is not None:
            count += 1
            _token_projection(errs, path, f"{at}.serviceAccountToken", as_dict(src.get("serviceAccountToken")))
        if src.get("clusterTrustBundle") is not None:
            count += 1
            _trust_bundle(errs, f"{at}.clusterTrustBundle", as_dict(src.get("clusterTrustBundle")))
            claim(as_str(as_dict(src.get("clusterTrustBundle")).get("path")),
                  as_str(as_dict(src.get("clusterTrustBundle")).get("path")))
        if count > 1:
            errs.append(forbidden(at, "may not specify more than 1 volume type per source"))


def _token_projection(errs: Errs, projected: str, path: str, token: dict[str, Any]) -> None:
    seconds = token.get("expirationSeconds")
    if is_int(seconds) and seconds < 600:
        errs.append(invalid(f"{path}.expirationSeconds", seconds, "may not specify a duration less than 10 minutes"))
    if is_int(seconds) and seconds > 1 << 32:
        errs.append(invalid(f"{path}.expirationSeconds", seconds,
                            "may not specify a duration larger than 2^32 seconds"))
    token_path = as_str(token.get("path"))
    if not token_path:
        # Reported on the projected volume's path, as Kubernetes does.
        errs.append(required(f"{projected}.path"))
    else:
        local_non_reserved_path(errs, f"{projected}.path", token_path)


def _trust_bundle(errs: Errs, path: str, bundle: dict[str, Any]) -> None:
    has_name, has_signer = "name" in bundle, "signerName" in bundle
    if has_name and has_signer:
        errs.append(invalid(path, "", "only one of name and signerName may be used"))
    elif has_name and not as_str(bundle.get("name")):
        errs.append(required(f"{path}.name", "must be a valid object name"))
    elif has_signer and not as_str(bundle.get("signerName")):
        errs.append(required(f"{path}.signerName", "must be a valid signer name"))
    elif not has_name and not has_signer:
        errs.append(required(path, "either name or signerName must be specified"))
    if not as_str(bundle.get("path")):
        errs.append(required(f"{path}.path"))
    local_non_reserved_path(errs, f"{path}.path", as_str(bundle.get("path")))


def _csi(errs: Errs, path: str, source: dict[str, Any]) -> None:
    driver = as_str(source.get("driver"))
    if not driver:
        errs.append(required(f"{path}.driver"))
    if len(driver) > 63:
        errs.append(too_long(f"{path}.driver", 63))
    each_invalid(errs, f"{path}.driver", driver, formats.is_dns1123_subdomain(driver.lower()))
    secret_ref = source.get("nodePublishSecretRef")
    if secret_ref is not None:
        name = as_str(as_dict(secret_ref).get("name"))
        if not name:
            errs.append(required(f"{path}.nodePublishSecretRef.name"))
        else:
            each_invalid(errs, f"{path}.name", name, formats.is_dns1123_subdomain(name))


def _ephemeral(errs: Errs, path: str, source: dict[str, Any]) -> None:
    template = source.get("volumeClaimTemplate")
    if template is None:
        errs.append(required(f"{path}.volumeClaimTemplate"))
        return
    meta = as_dict(as_dict(template).get("metadata"))
    labels(errs, f"{path}.volumeClaimTemplate.metadata.labels", meta.get("labels"))
    spec = as_dict(as_dict(template).get("spec"))
    if not as_list(spec.get("accessModes")):
        errs.append(required(f"{path}.volumeClaimTemplate.spec.accessModes"))


def _image(errs: Errs, path: str, source: dict[str, Any]) -> None:
    if not as_str(source.get("reference")):
        errs.append(required(f"{path}.reference"))
    policy = source.get("pullPolicy")
    if policy is not None and policy not in ("Always", "IfNotPresent", "Never"):
        errs.append(not_supported(f"{path}.pullPolicy", policy, ["Always", "IfNotPresent", "Never"]))


def _fc(errs: Errs, path: str, source: dict[str, Any]) -> None:
    wwns, wwids = as_list(source.get("targetWWNs")), as_list(source.get("wwids"))
    if not wwns and not wwids:
        errs.append(required(f"{path}.targetWWNs", "must specify either targetWWNs or wwids, but not both"))
    if wwns and wwids:
        errs.append(invalid(f"{path}.targetWWNs", "", "targetWWNs and wwids can not be specified simultaneously"))
    if wwns and source.get("lun") is None:
        errs.append(required(f"{path}.lun", "lun is required if targetWWNs is specified"))


def _flocker(errs: Errs, path: str, source: dict[str, Any]) -> None:
    name, uuid = as_str(source.get("datasetName")), as_str(source.get("datasetUUID"))
    if not name and not uuid:
        errs.append(required(path, "one of datasetName and datasetUUID is required"))
    if name and uuid:
        errs.append(invalid(path, "resource", "datasetName and datasetUUID can not be specified simultaneously"))
    if "/" in name:
        errs.append(invalid(f"{path}.datasetName", name, "must not contain '/'"))


_CHECKERS = {
    "emptyDir": _empty_dir, "hostPath": _host_path, "secret": _secret, "configMap": _config_map,
    "persistentVolumeClaim": _pvc, "nfs": _nfs, "downwardAPI": _downward_api, "projected": _projected,
    "csi": _csi, "ephemeral": _ephemeral, "image": _image, "fc": _fc, "flocker": _flocker,
}


def file_mode(errs: Errs, path: str, value: Any) -> None:
    if is_int(value) and not 0 <= value <= 0o777:
        errs.append(invalid(path, value, FILE_MODE_ERROR))


def key_to_path(errs: Errs, path: str, value: Any) -> None:
    item = as_dict(value)
    if not as_str(item.get("key")):
        errs.append(required(f"{path}.key"))
    item_path = as_str(item.get("path"))
    if not item_path:
        errs.append(required(f"{path}.path"))
    local_non_reserved_path(errs, f"{path}.path", item_path)
    file_mode(errs, f"{path}.mode", item.get("mode"))


def no_backsteps(errs: Errs, path: str, target: str) -> None:
    if ".." in target.split("/"):
        errs.append(invalid(path, target, "must not contain '..'"))


def local_descending_path(errs: Errs, path: str, target: str) -> None:
    if posixpath.isabs(target):
        errs.append(invalid(path, target, "must be a relative path"))
    no_backsteps(errs, path, target)


def local_non_reserved_path(errs: Errs, path: str, target: str) -> None:
    local_descending_path(errs, path, target)
    if target.startswith("..") and not target.startswith("../"):
        errs.append(invalid(path, target, "must not start with '..'"))


def object_field_selector(errs: Errs, path: str, value: Any, allowed: list[str]) -> None:
    """A downward-API ``fieldRef``: apiVersion v1 and one of the supported field paths."""
    selector = as_dict(value)
    api_version, field_path = as_str(selector.get("apiVersion")), as_str(selector.get("fieldPath"))
    if not api_version:
        errs.append(required(f"{path}.apiVersion"))
        return
    if not field_path:
        errs.append(required(f"{path}.fieldPath"))
        return
    problem = _convert_field_label(api_version, field_path)
    if problem:
        errs.append(invalid(f"{path}.fieldPath", field_path, f"error converting fieldPath: {problem}"))
        return
    base, subscript = _split_subscript(field_path)
    if subscript is not None:
        if base == "metadata.annotations":
            each_invalid(errs, path, subscript.lower(), formats.is_qualified_name(subscript.lower()))
        elif base == "metadata.labels":
            label_name(errs, path, subscript)
        else:
            errs.append(invalid(path, base, "does not support subscript"))
    elif field_path not in allowed:
        errs.append(not_supported(f"{path}.fieldPath", field_path, allowed))


_CONVERTIBLE_FIELD_LABELS = frozenset({
    "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid",
    "spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName", "spec.schedulerName", "status.phase",
    "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
})


def _split_subscript(field_path: str) -> tuple[str, str | None]:
    """``metadata.labels['app']`` -> (``metadata.labels``, ``app``)."""
    if field_path.endswith("']") and "['" in field_path:
        base, _, rest = field_path.partition("['")
        return base, rest[:-2]
    return field_path, None


def _convert_field_label(api_version: str, field_path: str) -> str:
    if api_version != "v1":
        return f"unsupported pod version: {api_version}"
    base, subscript = _split_subscript(field_path)
    if subscript is not None:
        if base in ("metadata.annotations", "metadata.labels"):
            return ""
        return f"field label does not support subscript: {field_path}"
    return "" if field_path in _CONVERTIBLE_FIELD_LABELS else f"field label not supported: {field_path}"
