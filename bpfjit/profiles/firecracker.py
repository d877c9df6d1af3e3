def looks_like(doc):
    return False
