def strip_trailing_slashes(result, generator, request, public):
    """Paths accept an optional trailing slash; the schema names the contract's form, without it."""
    result["paths"] = {path.rstrip("/") or "/": item for path, item in result["paths"].items()}
    return result
