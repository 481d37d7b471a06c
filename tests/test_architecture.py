"""The layout's rules (docs/ARCHITECTURE.md): imports go commands -> wings ->
core, the wings never import each other, the core needs no optional package,
and no module is over 400 lines."""
import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / 'jaxcolor'
OPTIONAL = {'av', 'onnx', 'onnxruntime', 'starlette', 'uvicorn', 'multipart', 'ai_edge_litert',
            'matplotlib', 'tensorflow_datasets', 'grain', 'array_record', 'optax'}


def layer(module):
  """'core', 'training', 'apps' or 'commands' of a dotted jaxcolor module name."""
  parts = module.split('.')
  return parts[1] if len(parts) >= 2 and parts[1] in ('training', 'apps', 'commands') else 'core'


def imports(path):
  """(dotted names imported anywhere in the file, top-level packages imported at module level)."""
  tree = ast.parse(path.read_text())
  names, module_level = set(), set()
  for node in ast.walk(tree):
    if isinstance(node, ast.Import):
      found = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      assert node.level == 0, f'{path}: relative import (the rules read absolute ones)'
      found = [f'{node.module}.{alias.name}' for alias in node.names]
    else:
      continue
    names.update(found)
    if node in tree.body:
      module_level.update(name.split('.')[0] for name in found)
  return names, module_level


def modules():
  for path in sorted(PACKAGE.rglob('*.py')):
    yield '.'.join(path.relative_to(ROOT).with_suffix('').parts), path


ALLOWED = {'core': {'core'}, 'training': {'core', 'training'}, 'apps': {'core', 'apps'},
           'commands': {'core', 'training', 'apps', 'commands'}}


def test_imports_go_from_commands_to_the_wings_to_the_core():
  wrong = []
  for module, path in modules():
    names, _ = imports(path)
    for name in names:
      if name.split('.')[0] in ('configs', 'benchmarks', 'tests', 'conftest'):
        wrong.append(f'{module} imports {name}')
      elif name.startswith('jaxcolor.') and layer(name) not in ALLOWED[layer(module)]:
        wrong.append(f'{module} ({layer(module)}) imports {name} ({layer(name)})')
  assert not wrong, '\n'.join(wrong)


def test_the_core_needs_no_optional_package():
  wrong = {module: sorted(imports(path)[1] & OPTIONAL) for module, path in modules()
           if layer(module) == 'core' and imports(path)[1] & OPTIONAL}
  assert not wrong, wrong


def test_no_module_is_over_400_lines():
  long = {module: n for module, path in modules()
          if (n := len(path.read_text().splitlines())) > 400}
  assert not long, long
