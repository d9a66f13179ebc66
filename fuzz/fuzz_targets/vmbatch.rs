#![cfg_attr(fuzzing, no_main)]
cairn_fuzz::target!(cairn_fuzz::targets::vmbatch);
