#!/usr/bin/env python3
"""A second opinion on our schema work: two independent validators, libxml2 (through lxml) and
the pure-Python `xmlschema`, check the messages dfdg-mock generated against the schemas of the
WSDL they belong to.

Usage: xsd_crosscheck.py WSDL_FILE MESSAGE_FILE...

WSDL_FILE is the tool-friendly variant dfdg-mock writes (`?wsdl&tools`, the welcome pack's
`wsdl-tools/`), with its imported parts beside it: every inline schema already declares the
namespaces and xs:imports it uses, so nothing is patched here but what a validator needs to be
pointed at: the inline schemas are written out as separate files (xs:imports without a
schemaLocation point at the inline schema of that namespace), and a namespace imported from
several files (OIO's one-element-per-file habit) is imported through one schema that includes
them all, since libxml2 honours only the first location of a namespace.

Each message file is a SOAP envelope; its Body element and header blocks are validated. Prints
one line per part, `valid <file> <element>` when both validators accept it, else
`INVALID <file> <element> <validator>: <error>` for each that refuses; exits 1 if any is refused.

Driven by the Rust integration tests in tests/it/catalog.rs and tests/it/contracts.rs.
Needs lxml and xmlschema (.ci/run installs them, pinned).
"""

import copy
import os
import shutil
import sys
import tempfile

import xmlschema
from lxml import etree

XS = "http://www.w3.org/2001/XMLSchema"
WSDL = "http://schemas.xmlsoap.org/wsdl/"


def schema_documents(folder):
    """Every .xsd below folder, parsed: {absolute path: tree}."""
    documents = {}
    for root, _, names in os.walk(folder):
        for name in names:
            if name.lower().endswith(".xsd"):
                path = os.path.join(root, name)
                documents[path] = etree.parse(path)
    return documents


def compile_schema(wsdl_file, folder):
    source = os.path.dirname(os.path.abspath(wsdl_file))
    work = os.path.join(folder, "wsdl")
    shutil.copytree(source, work)
    wsdl_path = os.path.join(work, os.path.basename(wsdl_file))
    wsdl = etree.parse(wsdl_path)
    inline = wsdl.findall(f"./{{{WSDL}}}types/{{{XS}}}schema")
    documents = schema_documents(work)

    # The inline schemas as files beside the WSDL (so relative locations still resolve).
    inline_paths = []
    for index, schema in enumerate(inline):
        nsmap = dict(wsdl.getroot().nsmap)
        nsmap.update(schema.nsmap)
        out = etree.Element(schema.tag, nsmap=nsmap)
        for name, value in schema.attrib.items():
            out.set(name, value)
        for child in schema:
            out.append(copy.deepcopy(child))
        path = os.path.join(work, f"_inline{index}.xsd")
        documents[path] = etree.ElementTree(out)
        inline_paths.append(path)

    # Where each namespace is defined.
    defined = {}
    for path, tree in documents.items():
        namespace = tree.getroot().get("targetNamespace", "")
        defined.setdefault(namespace, []).append(path)
    # Where each namespace is imported from, by every import with a location.
    located = {}
    for path, tree in documents.items():
        for element in tree.getroot().findall(f"{{{XS}}}import"):
            location = element.get("schemaLocation")
            if location:
                target = os.path.normpath(os.path.join(os.path.dirname(path), location))
                located.setdefault(element.get("namespace", ""), set()).add(target)

    # A namespace with several files behind it is imported through one that includes them all.
    wrappers = {}
    for namespace in sorted(set(defined) | set(located)):
        files = set(located.get(namespace, set()))
        files.update(p for p in defined.get(namespace, []) if p in inline_paths)
        if len(files) < 2:
            continue
        wrapper = etree.Element(f"{{{XS}}}schema", nsmap={"xs": XS})
        if namespace:
            wrapper.set("targetNamespace", namespace)
        for path in sorted(files):
            include = etree.SubElement(wrapper, f"{{{XS}}}include")
            include.set("schemaLocation", path)
        wrapper_path = os.path.join(work, f"_namespace{len(wrappers)}.xsd")
        etree.ElementTree(wrapper).write(wrapper_path)
        wrappers[namespace] = wrapper_path

    def target_of(namespace):
        if namespace in wrappers:
            return wrappers[namespace]
        inline_defining = [p for p in inline_paths if p in defined.get(namespace, [])]
        if inline_defining:
            return inline_defining[0]
        if namespace in located:
            return sorted(located[namespace])[0]
        paths = defined.get(namespace, [])
        return paths[0] if paths else None

    for path, tree in documents.items():
        changed = False
        for element in tree.getroot().findall(f"{{{XS}}}import"):
            namespace = element.get("namespace", "")
            if element.get("schemaLocation") and namespace not in wrappers:
                continue
            target = target_of(namespace)
            if target and os.path.abspath(target) != os.path.abspath(path):
                element.set("schemaLocation", target)
                changed = True
        if changed or path in inline_paths:
            tree.write(path)

    driver = etree.Element(f"{{{XS}}}schema", nsmap={"xs": XS})
    for namespace in sorted({d.getroot().get("targetNamespace", "") for d in map(etree.parse, inline_paths)}):
        element = etree.SubElement(driver, f"{{{XS}}}import")
        if namespace:
            element.set("namespace", namespace)
        element.set("schemaLocation", target_of(namespace))
    driver_path = os.path.join(work, "_driver.xsd")
    etree.ElementTree(driver).write(driver_path)
    return etree.XMLSchema(etree.parse(driver_path)), xmlschema.XMLSchema(driver_path)


def main():
    wsdl_file, messages = sys.argv[1], sys.argv[2:]
    with tempfile.TemporaryDirectory() as folder:
        libxml2, pure = compile_schema(wsdl_file, folder)
        invalid = 0
        for message in messages:
            envelope = etree.parse(message).getroot()
            parts = []
            for child in envelope:
                local = etree.QName(child).localname
                if local == "Header":
                    parts.extend(child)
                elif local == "Body":
                    parts.extend(child[:1])
            for part in parts:
                name = f"{os.path.basename(message)} {etree.QName(part).localname}"
                tree = etree.ElementTree(copy.deepcopy(part))
                refusals = []
                if not libxml2.validate(tree):
                    refusals.append(("libxml2", str(libxml2.error_log.last_error)))
                error = next(pure.iter_errors(tree), None)
                if error is not None:
                    reason = error.reason or str(error).splitlines()[0]
                    refusals.append(("xmlschema", f"{error.path}: {reason}"))
                if refusals:
                    invalid += 1
                    for validator, reason in refusals:
                        print(f"INVALID {name} {validator}: {reason}")
                else:
                    print(f"valid {name}")
    return 1 if invalid else 0


if __name__ == "__main__":
    sys.exit(main())
