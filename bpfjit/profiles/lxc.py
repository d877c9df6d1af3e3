def looks_like(data):
    return False
