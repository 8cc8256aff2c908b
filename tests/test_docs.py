"Every exported function, class constructor and public method documents each of its parameters with a docment (fastcore's comment on the parameter's line)."
import dataclasses, importlib, inspect, pkgutil
from fastcore.docments import docments
import asc_nbdev

def _modules():
    "Every module of the package but nbdev's index"
    return [importlib.import_module(m.name) for m in pkgutil.walk_packages(asc_nbdev.__path__, 'asc_nbdev.')
            if not m.name.endswith('_modidx')]

def _methods(cls):
    "(name, function) of the class's own `__init__` (a dataclass: the class, whose fields docments reads) and public methods"
    if dataclasses.is_dataclass(cls): yield '__init__', cls
    for k, v in vars(cls).items():
        f = v.__func__ if isinstance(v, (classmethod, staticmethod)) else v
        if not inspect.isfunction(f) or f.__code__.co_filename.startswith('<'): continue   # generated, e.g. a dataclass's `__init__`
        if k == '__init__' or not k.startswith('_'): yield k, f

def _targets():
    "(qualified name, function) for the `__all__` of every module: functions, and classes' `__init__` and public methods defined in them"
    for mod in _modules():
        for name in getattr(mod, '__all__', []):
            o = getattr(mod, name, None)
            if getattr(o, '__module__', None) != mod.__name__: continue   # re-exported from another module: checked there
            if inspect.isfunction(o): yield f'{mod.__name__}.{name}', o
            elif inspect.isclass(o):
                for k, f in _methods(o): yield f'{mod.__name__}.{name}' + ('' if k == '__init__' else f'.{k}'), f

def undocumented() -> dict:
    "qualified name -> its parameters without a docment (`self`/`cls` as a first parameter need none; `*args`/`**kwargs` do)"
    missing = {}
    for name, f in _targets():
        d = docments(f, full=True, args_kwargs=True)
        params = [k for k in d if k != 'return']
        miss = [k for i, k in enumerate(params) if not (i == 0 and k in ('self', 'cls')) and not d[k].docment]
        if miss: missing[name] = miss
    return missing

def test_walk_finds_the_api():
    names = {n for n, _ in _targets()}
    assert len(names) > 250, len(names)   # 284 when written
    assert {'asc_nbdev.data.loaders.band_stats', 'asc_nbdev.data.loaders.ASCDataLoader', 'asc_nbdev.models.fusion.ASCModel.forward',
            'asc_nbdev.report.render.RunReport.save', 'asc_nbdev.train.recipes.Recipe.replace'} <= names

def test_every_parameter_has_a_docment():
    miss = undocumented()
    assert not miss, (f"{sum(map(len, miss.values()))} parameters of {len(miss)} objects have no docment (a comment on the "
                      "parameter's line of the signature, in the notebook):\n" + '\n'.join(f'  {k}: {", ".join(v)}' for k, v in miss.items()))

if __name__ == '__main__':
    for k, v in undocumented().items(): print(k, v)
