//! The AMX tile configuration (component 17).

use core::mem::{offset_of, size_of};
use zerocopy::little_endian::U16;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout, Unaligned};

/// The AMX tile configuration (component 17, 64 bytes), as LDTILECFG
/// reads it and XSAVE stores it (Intel SDM vol. 1, "Tile configuration";
/// palette 1: up to 8 tiles of up to 16 rows of up to 64 bytes).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, KnownLayout, Immutable, Unaligned,
)]
#[repr(C)]
pub struct TileConfig {
    /// Palette: 0 (init, no tiles) or 1.
    pub palette: u8,
    /// The row a restarted tile load or store resumes at (0 normally).
    pub start_row: u8,
    /// Reserved, must be zero.
    pub reserved0: [u8; 14],
    /// Bytes per row of tiles 0-7 (at most 64).
    pub colsb: [U16; 8],
    /// Reserved (tiles 8-15 of larger palettes), must be zero.
    pub reserved1: [u8; 16],
    /// Rows of tiles 0-7 (at most 16).
    pub rows: [u8; 8],
    /// Reserved, must be zero.
    pub reserved2: [u8; 8],
}

/// Palette 1's limits (CPUID leaf 0x1D sub-leaf 1 on every AMX part so far).
pub mod palette1 {
    /// Tiles (TMM0-7).
    pub const TILES: usize = 8;
    /// Rows per tile at most.
    pub const MAX_ROWS: u8 = 16;
    /// Bytes per row at most.
    pub const BYTES_PER_ROW: u16 = 64;
    /// Bytes of one tile register (16 rows of 64 bytes).
    pub const TILE_BYTES: usize = MAX_ROWS as usize * BYTES_PER_ROW as usize;
}

/// Why a tile configuration would make LDTILECFG or XRSTOR fault.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TileConfigError {
    /// A palette other than 0 and 1.
    #[error("TILECFG palette {0} is not supported (0 or 1)")]
    Palette(u8),
    /// Palette 0 (init) with other bytes set.
    #[error("TILECFG palette 0 with byte {offset} set: an init configuration is all zero")]
    NotInit {
        /// The first non-zero byte.
        offset: usize,
    },
    /// A reserved byte that is not zero.
    #[error("TILECFG reserved byte {offset} is {value:#04x}, must be 0")]
    Reserved {
        /// Its offset in the 64 bytes.
        offset: usize,
        /// Its value.
        value: u8,
    },
    /// A tile with too many rows or bytes per row, or with one of them zero.
    #[error("TILECFG tile {tile}: {rows} rows of {colsb} bytes (palette 1: up to 16 rows of up to 64 bytes, both zero for an unused tile)")]
    Tile {
        /// The tile.
        tile: usize,
        /// Its rows.
        rows: u8,
        /// Its bytes per row.
        colsb: u16,
    },
    /// A restart row past the largest tile.
    #[error("TILECFG start_row {0} is past the 16 rows of a palette 1 tile")]
    StartRow(u8),
}

impl TileConfig {
    /// A palette 1 configuration of tiles 0-7 with the given rows and
    /// bytes per row.
    pub fn palette1(rows: [u8; 8], colsb: [u16; 8]) -> TileConfig {
        TileConfig {
            palette: 1,
            start_row: 0,
            reserved0: [0; 14],
            colsb: colsb.map(U16::new),
            reserved1: [0; 16],
            rows,
            reserved2: [0; 8],
        }
    }

    /// Checks the configuration as LDTILECFG does (and XRSTOR of a live
    /// TILECFG), conservatively: a configuration accepted here loads.
    ///
    /// # Errors
    ///
    /// The first fault found, naming the byte or tile.
    pub fn check(&self) -> Result<(), TileConfigError> {
        let bytes = self.as_bytes();
        match self.palette {
            0 => match bytes.iter().position(|&b| b != 0) {
                Some(offset) => Err(TileConfigError::NotInit { offset }),
                None => Ok(()),
            },
            1 => {
                let reserved = [
                    offset_of!(TileConfig, reserved0)..offset_of!(TileConfig, colsb),
                    offset_of!(TileConfig, reserved1)..offset_of!(TileConfig, rows),
                    offset_of!(TileConfig, reserved2)..size_of::<TileConfig>(),
                ];
                for r in reserved {
                    if let Some(i) = bytes[r.clone()].iter().position(|&b| b != 0) {
                        let offset = r.start + i;
                        return Err(TileConfigError::Reserved {
                            offset,
                            value: bytes[offset],
                        });
                    }
                }
                if self.start_row >= palette1::MAX_ROWS {
                    return Err(TileConfigError::StartRow(self.start_row));
                }
                for tile in 0..palette1::TILES {
                    let (rows, colsb) = (self.rows[tile], self.colsb[tile].get());
                    if rows > palette1::MAX_ROWS
                        || colsb > palette1::BYTES_PER_ROW
                        || (rows == 0) != (colsb == 0)
                    {
                        return Err(TileConfigError::Tile { tile, rows, colsb });
                    }
                }
                Ok(())
            }
            p => Err(TileConfigError::Palette(p)),
        }
    }
}

const _: () = {
    assert!(size_of::<TileConfig>() == 64);
    assert!(offset_of!(TileConfig, colsb) == 16);
    assert!(offset_of!(TileConfig, reserved1) == 32);
    assert!(offset_of!(TileConfig, rows) == 48);
    assert!(offset_of!(TileConfig, reserved2) == 56);
};

#[cfg(test)]
mod tests {
    use super::*;
    use zerocopy::FromZeros;

    #[test]
    fn tile_configs_are_checked_as_ldtilecfg_does() {
        let good = TileConfig::palette1(
            [16, 15, 14, 13, 12, 11, 10, 0],
            [64, 60, 56, 52, 48, 44, 40, 0],
        );
        assert_eq!(good.check(), Ok(()));
        assert_eq!(TileConfig::new_zeroed().check(), Ok(()));
        let with = |edit: fn(&mut TileConfig)| {
            let mut c = good;
            edit(&mut c);
            c.check()
        };
        assert_eq!(with(|c| c.palette = 2), Err(TileConfigError::Palette(2)));
        assert_eq!(
            with(|c| c.reserved0[3] = 9),
            Err(TileConfigError::Reserved {
                offset: 5,
                value: 9
            })
        );
        assert_eq!(
            with(|c| c.reserved2[7] = 1),
            Err(TileConfigError::Reserved {
                offset: 63,
                value: 1
            })
        );
        assert_eq!(
            with(|c| c.rows[0] = 17),
            Err(TileConfigError::Tile {
                tile: 0,
                rows: 17,
                colsb: 64
            })
        );
        assert_eq!(
            with(|c| c.colsb[2] = U16::new(65)),
            Err(TileConfigError::Tile {
                tile: 2,
                rows: 14,
                colsb: 65
            })
        );
        assert_eq!(
            with(|c| c.rows[7] = 1),
            Err(TileConfigError::Tile {
                tile: 7,
                rows: 1,
                colsb: 0
            })
        );
        assert_eq!(
            with(|c| c.start_row = 16),
            Err(TileConfigError::StartRow(16))
        );
        let mut init_with_rows = TileConfig::new_zeroed();
        init_with_rows.rows[1] = 4;
        assert_eq!(
            init_with_rows.check(),
            Err(TileConfigError::NotInit { offset: 49 })
        );
    }
}
